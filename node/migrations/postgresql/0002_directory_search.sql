-- Free-text search over the directory. Rows are written by the storage layer
-- in the same transaction as the group they index (rowid = groups.id).
-- PostgreSQL has no FTS5: an ordinary table with the same columns, and its tsvector kept
-- by PostgreSQL itself, GIN-indexed; 'simple' (no stemming) as unicode61 does not stem.

-- Accents removed as unicode61's remove_diacritics 2 does. unaccent() is only STABLE (its
-- dictionary could change), which a generated column refuses: the usual IMMUTABLE wrapper,
-- with the dictionary named in full so it does not depend on the search path.
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
CREATE FUNCTION unaccented(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN public.unaccent('public.unaccent'::regdictionary, $1);

CREATE TABLE groups_fts (
    rowid       BIGINT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    topics      TEXT NOT NULL DEFAULT '',
    -- A name weighs most, then topics and summary, then the description.
    document    tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('simple', unaccented(name)), 'A')
                    || setweight(to_tsvector('simple', unaccented(topics || ' ' || summary)),
                                 'B')
                    || setweight(to_tsvector('simple', unaccented(description)), 'C')
                ) STORED
);
CREATE INDEX groups_fts_document ON groups_fts USING gin (document);

INSERT INTO groups_fts (rowid, name, summary, description, topics)
SELECT g.id, g.name, g.summary, g.description,
       coalesce((SELECT string_agg(t.value, ' ') FROM group_tags t
                 WHERE t.group_id = g.id AND t.kind = 'topic'), '')
FROM groups g;
