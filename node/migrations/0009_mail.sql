-- The mail outbox: each message is committed with the change that caused it and sent
-- by the node's mail worker (node.mailer), retried with backoff for a day.
CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY,
    -- Erasing an account erases the mail queued for it.
    account_id      INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    to_address      TEXT NOT NULL,
    kind            TEXT NOT NULL,   -- 'verify', 'reset', 'join_request', 'meeting_changed'...
    message_id      TEXT NOT NULL UNIQUE,  -- the same on every attempt
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    attachments     TEXT NOT NULL DEFAULT '[]',  -- JSON: [{filename, content_type, data (base64)}]
    unsubscribe_url TEXT,            -- set for every kind that is not account security
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox(state, next_attempt_at);
CREATE INDEX mail_outbox_account ON mail_outbox(account_id);
