-- PostgreSQL twin of ../0013_mail_preferences.sql: BIGINT integers, no WITHOUT ROWID.
-- What mail a member wants: a row only once they choose (none: every kind at once,
-- no reminders). Account security mail is not a choice and has no row here.
CREATE TABLE mail_preferences (
    -- The account's id, never numbered here: no identity, unlike SQLite's rowid alias.
    account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    digest     BIGINT NOT NULL DEFAULT 0,  -- 1: one message a day instead of one each
    reminders  BIGINT NOT NULL DEFAULT 0   -- 1: a reminder the day before a meeting
);

-- The kinds of notice a member turned off ('join_request', 'meeting_changed'...).
CREATE TABLE mail_kinds_off (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    PRIMARY KEY (account_id, kind)
);

-- The day-before reminders already recorded, so each goes once per occurrence and
-- start (a meeting moved after its reminder is reminded of again at its new time).
CREATE TABLE reminders_sent (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    event_id    BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    occurrence  TEXT NOT NULL,   -- the slot's key, as rsvps.occurrence
    starts_utc  TEXT NOT NULL,
    PRIMARY KEY (account_id, event_id, occurrence, starts_utc)
);
CREATE INDEX reminders_sent_start ON reminders_sent(starts_utc);
