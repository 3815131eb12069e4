-- PostgreSQL twin of ../0014_group_review.sql: integers are BIGINT.
-- A public group made by an account the node does not yet trust waits for an admin's yes:
-- seen by its members only, neither listed nor federated, until approved. NULL: never
-- reviewed (not public yet, or a peer's listing).
ALTER TABLE groups ADD COLUMN review TEXT
      CHECK (review IN ('pending', 'approved', 'refused'));
ALTER TABLE groups ADD COLUMN review_reason TEXT NOT NULL DEFAULT '';  -- the last refusal's, for its facilitators
ALTER TABLE groups ADD COLUMN reviewed_by BIGINT REFERENCES accounts(id) ON DELETE SET NULL;
ALTER TABLE groups ADD COLUMN review_at TEXT;  -- since when it waits, or when it was decided
CREATE INDEX groups_review_queue ON groups(review_at) WHERE review = 'pending';
-- Public groups listed before the gate existed stay listed.
UPDATE groups SET review = 'approved' WHERE origin IS NULL AND visibility = 'public';

-- An account whose public groups skip the review (set by an admin).
ALTER TABLE accounts ADD COLUMN trusted BIGINT NOT NULL DEFAULT 0;
