-- Node settings edited by the admin (name, description, registration mode, ...).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    email         TEXT UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'pending', 'suspended')),
    created_at    TEXT NOT NULL
);

-- Server-side sessions: logout and account deletion really end them.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);

-- One-time login links (the first admin, account recovery by an admin).
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

-- Invite codes for registration when the node is invite-only.
CREATE TABLE invite_codes (
    code       TEXT PRIMARY KEY,
    created_by INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    uses_left  INTEGER NOT NULL CHECK (uses_left >= 0),
    created_at TEXT NOT NULL
);

CREATE TABLE groups (
    id           INTEGER PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    summary      TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    agreements   TEXT NOT NULL DEFAULT '',
    visibility   TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
    join_policy  TEXT NOT NULL CHECK (join_policy IN ('open', 'approval', 'invite')),
    invite_code  TEXT,
    format       TEXT NOT NULL CHECK (format IN ('in_person', 'online', 'hybrid')),
    area         TEXT NOT NULL DEFAULT '',
    address      TEXT NOT NULL DEFAULT '',
    cost         TEXT NOT NULL CHECK (cost IN ('free', 'donation', 'sliding_scale', 'fee')),
    contact      TEXT NOT NULL DEFAULT '',
    -- NULL for groups of this node; the peer's host for federated listings.
    origin       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX groups_listing ON groups(visibility, origin);
CREATE INDEX groups_area ON groups(area COLLATE NOCASE);

-- Multi-valued listing fields, one row per value, so filters use an index.
CREATE TABLE group_tags (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('topic', 'language', 'accessibility', 'audience')),
    value    TEXT NOT NULL,
    PRIMARY KEY (kind, value, group_id)
) WITHOUT ROWID;
CREATE INDEX group_tags_group ON group_tags(group_id);

CREATE TABLE memberships (
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('facilitator', 'member')),
    status     TEXT NOT NULL CHECK (status IN ('active', 'pending')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;
CREATE INDEX memberships_account ON memberships(account_id);

-- A meeting series: one-off when rrule is NULL. Start is local wall time in
-- the named time zone, as RFC 5545 DTSTART;TZID= keeps it.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    group_id         INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    starts_at        TEXT NOT NULL,   -- 'YYYY-MM-DDTHH:MM', local to timezone
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes > 0),
    timezone         TEXT NOT NULL,
    rrule            TEXT,
    format           TEXT NOT NULL CHECK (format IN ('in_person', 'online', 'hybrid')),
    place            TEXT NOT NULL DEFAULT '',
    address          TEXT NOT NULL DEFAULT '',
    online_url       TEXT NOT NULL DEFAULT '',
    capacity         INTEGER CHECK (capacity IS NULL OR capacity > 0),
    cancelled        INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX events_group ON events(group_id);

-- A single occurrence cancelled or moved, keyed like RECURRENCE-ID.
CREATE TABLE event_exceptions (
    event_id         INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    original_start   TEXT NOT NULL,   -- local 'YYYY-MM-DDTHH:MM' of the series slot
    cancelled        INTEGER NOT NULL DEFAULT 0,
    starts_at        TEXT,            -- new local start when moved
    duration_minutes INTEGER,
    PRIMARY KEY (event_id, original_start)
) WITHOUT ROWID;

-- Occurrences expanded over a rolling horizon, so date filters are SQL.
CREATE TABLE occurrences (
    event_id       INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    group_id       INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    original_start TEXT NOT NULL,
    starts_utc     TEXT NOT NULL,
    ends_utc       TEXT NOT NULL,
    PRIMARY KEY (event_id, original_start)
) WITHOUT ROWID;
CREATE INDEX occurrences_time ON occurrences(starts_utc, group_id);
CREATE INDEX occurrences_group ON occurrences(group_id, starts_utc);

-- RSVPs per occurrence; 'waitlist' rows are promoted in seq order.
CREATE TABLE rsvps (
    seq        INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    status     TEXT NOT NULL CHECK (status IN ('going', 'waitlist')),
    UNIQUE (event_id, occurrence, account_id)
);
CREATE INDEX rsvps_account ON rsvps(account_id);
