-- PostgreSQL twin of ../0007_actor_keys.sql: no WITHOUT ROWID.
-- Remote actors' Ed25519 keys: the FEP-521a Multikeys of their assertionMethod,
-- by key id, for RFC 9421 signatures (an actor's RSA key stays in remote_actors).
CREATE TABLE remote_actor_keys (
    key_id     TEXT PRIMARY KEY,
    actor_id   TEXT NOT NULL REFERENCES remote_actors(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL  -- publicKeyMultibase: "z", base58btc of 0xed 0x01 and 32 bytes
);
CREATE INDEX remote_actor_keys_actor ON remote_actor_keys(actor_id);
