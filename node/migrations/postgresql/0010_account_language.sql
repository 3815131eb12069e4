-- PostgreSQL twin of ../0010_account_language.sql: the same statement as in SQLite.
-- The language a member reads mail in: the one they registered in, until they choose.
ALTER TABLE accounts ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
