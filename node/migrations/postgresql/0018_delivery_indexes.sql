-- PostgreSQL twin of ../0018_delivery_indexes.sql: the same statements as in SQLite.
-- A delivery's answer finds its peer by inbox, and a peer's waiting deliveries are
-- found by inbox: both without reading every row (a fan-out to 10,000 peers answers
-- 10,000 times).
CREATE INDEX peers_inbox ON peers(inbox);
CREATE INDEX deliveries_waiting ON deliveries(inbox) WHERE state = 'queued';
