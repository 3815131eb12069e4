-- PostgreSQL twin of ../0012_account_mail.sql: the nocase collation of 0001, and now as
-- ISO text by to_char, as SQLite's strftime writes it.
-- Account mail: a confirmed address, a change of address waiting for its confirmation,
-- and the reason an applicant gives when registration needs an admin's approval.
-- The links in these messages are signed tokens (node.account_links): none is stored.

-- NULL until the member opens the link sent to their address.
ALTER TABLE accounts ADD COLUMN email_verified_at TEXT;
-- The address a member asked to move to; they log in with `email` until it is confirmed.
ALTER TABLE accounts ADD COLUMN pending_email TEXT COLLATE nocase;
-- Why an applicant wants to join, for the admins who approve accounts; cleared on approval.
ALTER TABLE accounts ADD COLUMN join_reason TEXT NOT NULL DEFAULT '';

-- Accounts from before confirmation existed are trusted as they are.
UPDATE accounts
   SET email_verified_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
