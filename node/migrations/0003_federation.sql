-- ActivityPub federation: keys, peers, remote actors, inbox and delivery queue.

-- RSA keys of this node's actors: 'node' and 'group:<id>' for public groups.
CREATE TABLE actor_keys (
    owner       TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    public_pem  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Peer nodes, by normalised host: whether we follow them, whether they follow us.
CREATE TABLE peers (
    host            TEXT PRIMARY KEY,
    actor_id        TEXT NOT NULL,
    inbox           TEXT NOT NULL,   -- their shared inbox, else the actor's inbox
    outbox          TEXT,
    following       TEXT NOT NULL DEFAULT 'none'
                    CHECK (following IN ('none', 'requested', 'accepted', 'rejected')),
    follow_id       TEXT,            -- our Follow activity
    follower        TEXT NOT NULL DEFAULT 'none'
                    CHECK (follower IN ('none', 'pending', 'approved', 'rejected')),
    their_follow_id TEXT,            -- their Follow activity, answered on approval
    last_success_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE blocked_domains (
    domain     TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- Remote actors fetched for their keys and inboxes (the key cache).
CREATE TABLE remote_actors (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    type         TEXT NOT NULL,
    username     TEXT NOT NULL,
    inbox        TEXT NOT NULL,
    shared_inbox TEXT,
    outbox       TEXT,
    key_id       TEXT NOT NULL,
    public_pem   TEXT NOT NULL,
    fetched_at   TEXT NOT NULL
);
CREATE INDEX remote_actors_key ON remote_actors(key_id);

-- Failed fetches remembered for a while, so a dead key is not asked again and again.
CREATE TABLE fetch_failures (
    url       TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    failed_at TEXT NOT NULL
);

-- Remote accounts (Mastodon, Mobilizon...) following a local public group.
CREATE TABLE group_followers (
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    actor_id   TEXT NOT NULL,
    inbox      TEXT NOT NULL,
    follow_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (group_id, actor_id)
) WITHOUT ROWID;

-- Activities received, stored once by id and applied by the runner.
CREATE TABLE inbox_items (
    activity_id     TEXT PRIMARY KEY,
    actor           TEXT NOT NULL,
    host            TEXT NOT NULL,
    type            TEXT NOT NULL,
    body            TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'received'
                    CHECK (state IN ('received', 'applied', 'ignored', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT
);
CREATE INDEX inbox_items_due ON inbox_items(state, next_attempt_at);

-- Activities this node published, for outboxes and backfill.
CREATE TABLE activities (
    id        TEXT PRIMARY KEY,
    actor     TEXT NOT NULL,   -- 'node' or 'group:<id>'
    type      TEXT NOT NULL,
    object_id TEXT,
    body      TEXT NOT NULL,
    published TEXT NOT NULL,
    seq       INTEGER NOT NULL
);
CREATE INDEX activities_actor ON activities(actor, seq);

-- One row per (activity, inbox): the durable delivery queue.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    activity_id     TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    inbox           TEXT NOT NULL,
    signer          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    state_changed   TEXT NOT NULL,
    UNIQUE (activity_id, inbox)
);
CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);

-- Federated copies: the ActivityPub id and public page of remote listings.
ALTER TABLE groups ADD COLUMN ap_id TEXT;
ALTER TABLE groups ADD COLUMN url TEXT;
CREATE UNIQUE INDEX groups_ap_id ON groups(ap_id) WHERE ap_id IS NOT NULL;
ALTER TABLE events ADD COLUMN ap_id TEXT;
ALTER TABLE events ADD COLUMN url TEXT;
CREATE UNIQUE INDEX events_ap_id ON events(ap_id) WHERE ap_id IS NOT NULL;

-- Every write to a local group or meeting, in the writing transaction: the
-- publisher turns these into Create/Update/Delete activities for followers.
CREATE TABLE listing_changes (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('group', 'event')),
    local_id   INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

-- What this node has published of each local object, so a later change
-- becomes an Update, and a group made private or deleted becomes a Delete.
CREATE TABLE publications (
    kind      TEXT NOT NULL CHECK (kind IN ('group', 'event')),
    local_id  INTEGER NOT NULL,
    ap_id     TEXT NOT NULL,
    actor     TEXT NOT NULL,  -- 'group:<id>', the publishing actor
    PRIMARY KEY (kind, local_id)
) WITHOUT ROWID;
