-- What a member is to be told, recorded in the transaction of the change that causes it
-- (a join request, a meeting moved...). The notice worker turns each into mail in the
-- member's language, as their preferences say (at once, in a daily digest, or not at all).
CREATE TABLE notices (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',  -- JSON: what the message needs that may change
    created_at  TEXT NOT NULL
);
CREATE INDEX notices_account ON notices(account_id);
