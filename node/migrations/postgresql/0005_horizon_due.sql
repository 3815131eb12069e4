-- PostgreSQL twin of ../0005_horizon_due.sql: the same statements as in SQLite.
-- When rolling the expanded horizon forward next changes a series' occurrences
-- (one comes into the window or falls out of it), so a refresh re-expands only
-- those series; NULL for series no refresh changes (one-offs, cancelled ones).
ALTER TABLE events ADD COLUMN horizon_due TEXT;
UPDATE events SET horizon_due = created_at WHERE rrule IS NOT NULL AND cancelled = 0;
CREATE INDEX events_horizon_due ON events(horizon_due);
