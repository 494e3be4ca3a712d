-- Comments are indexed for search by a trigger, in the statement that stores them, instead of by the
-- writer after the fact (fts_indexed). The writer's cost under a burst turned out to be its calls
-- into SQLite, each of which must win the GIL back from a busy event loop, not FTS5's work (done
-- with the GIL released): new messages arrive as one multi-row INSERT per group, and indexing inside
-- that statement costs no call of its own, where the separate indexing step cost five.

-- What an earlier version left unindexed is indexed now.
INSERT INTO comments_fts (rowid, clean_content)
    SELECT message_id, clean_content FROM comments WHERE fts_indexed = 0;

DROP TRIGGER comments_fts_delete;
DROP TRIGGER comments_fts_update;
DROP INDEX comments_unindexed;
ALTER TABLE comments DROP COLUMN fts_indexed;

CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN
    INSERT INTO comments_fts (rowid, clean_content) VALUES (new.message_id, new.clean_content);
END;
CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, clean_content) VALUES ('delete', old.message_id, old.clean_content);
END;
CREATE TRIGGER comments_fts_update AFTER UPDATE OF clean_content ON comments BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, clean_content) VALUES ('delete', old.message_id, old.clean_content);
    INSERT INTO comments_fts (rowid, clean_content) VALUES (new.message_id, new.clean_content);
END;
