-- PostgreSQL twin of ../0006_exact_federation.sql: integers are BIGINT.
-- Federated copies: when their origin last confirmed them (an activity or a
-- refetch), and when a silent origin is next asked again.
ALTER TABLE groups ADD COLUMN confirmed_at TEXT;
ALTER TABLE groups ADD COLUMN next_check_at TEXT;
ALTER TABLE groups ADD COLUMN check_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN confirmed_at TEXT;
UPDATE groups SET confirmed_at = updated_at WHERE origin IS NOT NULL;
UPDATE events SET confirmed_at = updated_at WHERE ap_id IS NOT NULL;

-- When an activity last arrived from a peer.
ALTER TABLE peers ADD COLUMN last_inbound_at TEXT;

-- Published activities: the local object they speak of ('group:<id>' or
-- 'event:<id>'), and whether it was taken back (no longer served).
ALTER TABLE activities ADD COLUMN subject TEXT;
ALTER TABLE activities ADD COLUMN withdrawn BIGINT NOT NULL DEFAULT 0;
CREATE INDEX activities_subject ON activities(subject);
