-- PostgreSQL twin of ../0008_cancelled_occurrences.sql: integers are BIGINT.
-- Cancelled occurrences are kept expanded, marked, so calendars show them as cancelled;
-- the directory's date filters and next meetings skip them.
ALTER TABLE occurrences ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;
-- Re-expand every series with a cancelled slot on the next start.
UPDATE events SET horizon_due = '0000-01-01T00:00:00Z'
 WHERE cancelled = 0 AND id IN (SELECT event_id FROM event_exceptions WHERE cancelled = 1);
