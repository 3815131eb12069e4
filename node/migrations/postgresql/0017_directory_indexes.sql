-- PostgreSQL twin of ../0017_directory_indexes.sql: the nocase collation of 0001.
-- The directory reads only indexes to find listed groups and their held meetings: with
-- `cancelled` in the occurrence indexes a date window or a next meeting needs no table row.
DROP INDEX occurrences_time;
CREATE INDEX occurrences_time ON occurrences(starts_utc, group_id, cancelled);
DROP INDEX occurrences_group;
CREATE INDEX occurrences_group ON occurrences(group_id, starts_utc, cancelled);
-- Every column of the directory's own conditions on a group (but its area, indexed apart).
CREATE INDEX groups_directory ON groups(visibility, suspended, review, origin, format, cost,
                                        ap_id);
-- An area is looked up with the same conditions, so the planner keeps to it for an area.
DROP INDEX groups_area;
CREATE INDEX groups_area ON groups(area COLLATE nocase, visibility, suspended);
