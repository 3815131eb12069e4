-- How members run their groups: themes, a facilitation rota, agreements written together,
-- check-out pulses and resources. All of it stays on this node.

-- A group's choices; a group with no row runs on the defaults.
CREATE TABLE group_practice (
    group_id           INTEGER PRIMARY KEY REFERENCES groups(id) ON DELETE CASCADE,
    theme_choice       TEXT NOT NULL DEFAULT 'facilitator'
                       CHECK (theme_choice IN ('facilitator', 'most_supported')),
    themes_public      INTEGER NOT NULL DEFAULT 0,
    theme_lead_hours   INTEGER NOT NULL DEFAULT 48 CHECK (theme_lead_hours BETWEEN 1 AND 336),
    facilitation       TEXT NOT NULL DEFAULT 'facilitator_led'
                       CHECK (facilitation IN ('facilitator_led', 'rotating')),
    agreement_decision TEXT NOT NULL DEFAULT 'consent'
                       CHECK (agreement_decision IN ('consent', 'facilitator')),
    discussion_days    INTEGER NOT NULL DEFAULT 7 CHECK (discussion_days BETWEEN 1 AND 60),
    pulse_keep_days    INTEGER NOT NULL DEFAULT 90 CHECK (pulse_keep_days BETWEEN 1 AND 365)
);

-- Themes proposed for one meeting (a series' occurrence). No time is kept, the id is
-- random (it keeps no order of proposing), and the proposer is shown only when they signed.
CREATE TABLE theme_proposals (
    id         INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence TEXT NOT NULL,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    theme      TEXT NOT NULL,
    signed     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (event_id, occurrence, theme)
);

-- One supported proposal per member and meeting, changeable until the theme is set.
CREATE TABLE theme_votes (
    event_id    INTEGER NOT NULL,
    occurrence  TEXT NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    proposal_id INTEGER NOT NULL REFERENCES theme_proposals(id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, occurrence, account_id)
) WITHOUT ROWID;
CREATE INDEX theme_votes_proposal ON theme_votes(proposal_id);

-- The theme a meeting has; a row closes its proposals. For a peer's meeting: the public
-- theme its node sent.
CREATE TABLE meeting_themes (
    event_id   INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence TEXT NOT NULL,
    theme      TEXT NOT NULL,   -- '': chosen with no theme (nothing was proposed)
    set_at     TEXT NOT NULL,
    PRIMARY KEY (event_id, occurrence)
) WITHOUT ROWID;

-- Who holds (or co-holds) a meeting of a rotating group. A turn changing hands is
-- reminded of again: reminded_for is the start the day-before reminder was recorded for.
CREATE TABLE meeting_holders (
    event_id     INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence   TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('holder', 'co_holder')),
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    swap_wanted  INTEGER NOT NULL DEFAULT 0,
    reminded_for TEXT,
    PRIMARY KEY (event_id, occurrence, role)
) WITHOUT ROWID;
CREATE INDEX meeting_holders_account ON meeting_holders(account_id);

-- Each version of a group's agreements; groups.agreements is the latest.
CREATE TABLE agreement_versions (
    group_id    INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    adopted_at  TEXT NOT NULL,
    how         TEXT NOT NULL CHECK (how IN ('written', 'consent', 'facilitator')),
    proposal_id INTEGER REFERENCES agreement_proposals(id) ON DELETE SET NULL,
    PRIMARY KEY (group_id, version)
) WITHOUT ROWID;

-- A change to the agreements a member proposes: the whole new text.
CREATE TABLE agreement_proposals (
    id           INTEGER PRIMARY KEY,
    group_id     INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    account_id   INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    base_version INTEGER NOT NULL,
    text         TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL DEFAULT 'open'
                 CHECK (state IN ('open', 'adopted', 'withdrawn', 'declined', 'superseded')),
    created_at   TEXT NOT NULL,
    closes_at    TEXT NOT NULL,
    decided_at   TEXT
);
CREATE INDEX agreement_proposals_group ON agreement_proposals(group_id, state);

CREATE TABLE agreement_objections (
    proposal_id INTEGER NOT NULL REFERENCES agreement_proposals(id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (proposal_id, account_id)
) WITHOUT ROWID;

CREATE TABLE agreement_comments (
    id          INTEGER PRIMARY KEY,
    proposal_id INTEGER NOT NULL REFERENCES agreement_proposals(id) ON DELETE CASCADE,
    account_id  INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX agreement_comments_proposal ON agreement_comments(proposal_id);

-- The version of its group's agreements a member last accepted (0: none).
ALTER TABLE memberships ADD COLUMN agreements_version INTEGER NOT NULL DEFAULT 0;
INSERT INTO agreement_versions (group_id, version, text, adopted_at, how)
    SELECT id, 1, agreements, updated_at, 'written' FROM groups
    WHERE origin IS NULL AND agreements != '';
UPDATE memberships SET agreements_version = 1
    WHERE group_id IN (SELECT group_id FROM agreement_versions);

-- Check-out pulses. An answer keeps no account and no time; who answered is kept apart,
-- only so that each member answers once. erase_after (the meeting's end and the group's
-- pulse_keep_days) is fixed by the first answer; erasing the meeting erases the rest.
CREATE TABLE pulse_meetings (
    event_id     INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence   TEXT NOT NULL,
    group_id     INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    erase_after  TEXT NOT NULL,
    PRIMARY KEY (event_id, occurrence)
) WITHOUT ROWID;
CREATE INDEX pulse_meetings_erase ON pulse_meetings(erase_after);

CREATE TABLE pulse_answers (
    event_id   INTEGER NOT NULL,
    occurrence TEXT NOT NULL,
    token      TEXT NOT NULL,   -- random: rows keep no order of arrival
    scale      INTEGER NOT NULL CHECK (scale BETWEEN 1 AND 5),
    word       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (event_id, occurrence, token),
    FOREIGN KEY (event_id, occurrence) REFERENCES pulse_meetings(event_id, occurrence)
        ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE pulse_answered (
    event_id   INTEGER NOT NULL,
    occurrence TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, occurrence, account_id),
    FOREIGN KEY (event_id, occurrence) REFERENCES pulse_meetings(event_id, occurrence)
        ON DELETE CASCADE
) WITHOUT ROWID;

-- What facilitators see: the summary as of the last whole batch of answers.
CREATE TABLE pulse_summaries (
    event_id   INTEGER NOT NULL,
    occurrence TEXT NOT NULL,
    answers    INTEGER NOT NULL,
    summary    TEXT NOT NULL,   -- JSON: counts per scale step, words
    PRIMARY KEY (event_id, occurrence),
    FOREIGN KEY (event_id, occurrence) REFERENCES pulse_meetings(event_id, occurrence)
        ON DELETE CASCADE
) WITHOUT ROWID;

-- What a group collects for its members; the public ones show on its public page.
CREATE TABLE group_resources (
    id         INTEGER PRIMARY KEY,
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('service', 'hotline', 'reading', 'other')),
    title      TEXT NOT NULL,
    url        TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    public     INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX group_resources_group ON group_resources(group_id, public);
