-- Free-text search over the directory. Rows are written by the storage layer
-- in the same transaction as the group they index (rowid = groups.id).
CREATE VIRTUAL TABLE groups_fts USING fts5(
    name, summary, description, topics,
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO groups_fts (rowid, name, summary, description, topics)
SELECT g.id, g.name, g.summary, g.description,
       coalesce((SELECT group_concat(t.value, ' ') FROM group_tags t
                 WHERE t.group_id = g.id AND t.kind = 'topic'), '')
FROM groups g;
