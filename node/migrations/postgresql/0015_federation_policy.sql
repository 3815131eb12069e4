-- PostgreSQL twin of ../0015_federation_policy.sql: the same statements as in SQLite.
-- Why a domain is blocked, in the admin's words: public on /about/federation and in
-- NodeInfo, unless the admin keeps the block list private (a node setting).
ALTER TABLE blocked_domains ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- When a delivery first failed (NULL while it has not): a peer's "failing since" on
-- /admin/peers is the first failure of its oldest delivery still waiting.
ALTER TABLE deliveries ADD COLUMN first_failed_at TEXT;
UPDATE deliveries SET first_failed_at = created_at WHERE state != 'sent' AND attempts > 0;
