-- Moderation: reports, hidden remote listings, suspended groups, the audit log.

-- A report about a group or a meeting, by a local member or (as a Flag) a peer.
-- group_id is set for meetings too (the meeting's group), so facilitators see
-- the reports about their own groups; target_name and target_ap_id keep the
-- report readable after the listing is gone.
CREATE TABLE reports (
    id           INTEGER PRIMARY KEY,
    reporter_id  INTEGER REFERENCES accounts(id) ON DELETE SET NULL,  -- local reports only
    peer_host    TEXT,            -- the peer whose Flag this is
    flag_id      TEXT UNIQUE,     -- that Flag's activity id: applied once
    body         TEXT,            -- that Flag as received
    group_id     INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    event_id     INTEGER REFERENCES events(id) ON DELETE SET NULL,
    target_name  TEXT NOT NULL,
    target_ap_id TEXT,            -- a remote listing's id, where a Flag would name it
    reason       TEXT NOT NULL
                 CHECK (reason IN ('harmful', 'spam', 'unsafe', 'impersonation', 'other')),
    comment      TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'dismissed')),
    note         TEXT NOT NULL DEFAULT '',
    forwarded_at TEXT,
    created_at   TEXT NOT NULL,
    closed_at    TEXT
);
CREATE INDEX reports_state ON reports(state, created_at);
CREATE INDEX reports_group ON reports(group_id);

-- Remote groups and meetings an admin hid, by ActivityPub id: a later Update
-- from the peer refreshes the row but does not bring it back.
CREATE TABLE hidden_listings (
    ap_id     TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    origin    TEXT NOT NULL,
    hidden_at TEXT NOT NULL
) WITHOUT ROWID;

-- A suspended local group is seen by admins only and no longer federated.
ALTER TABLE groups ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;

-- Every admin action: who (and their name then), what, on what, when.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    actor_id   INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
