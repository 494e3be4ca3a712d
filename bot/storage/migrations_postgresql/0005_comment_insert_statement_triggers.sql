-- PostgreSQL only (no SQLite migration): the four AFTER INSERT triggers on comments run once per
-- statement over the rows it inserted (a transition table) instead of once per row. A batch of new
-- comments is one INSERT; per row, the four PL/pgSQL calls cost about 250 us of the 300 us a new
-- comment took (bench/ingest.py --engine postgresql, bench/README.md). What each does is unchanged,
-- the same names, the same rows written. The outbox's events of one statement follow the messages'
-- order (their ids); the statement's join may hand its rows over in another.

DROP TRIGGER comments_blog_reply_author ON comments;
DROP TRIGGER comments_fts_insert ON comments;
DROP TRIGGER comments_version_insert ON comments;
DROP TRIGGER webhook_comment_created ON comments;

-- A comment posted through the bot's webhook for a signed-in reader belongs to the reader.
CREATE OR REPLACE FUNCTION comments_blog_reply_author() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE comments c
    SET author_id = r.author_id, author_name = r.author_name, author_avatar_url = r.author_avatar_url,
        is_bot = 0, reply_to = COALESCE(r.reply_to, n.reply_to)
    FROM inserted n JOIN blog_replies r ON r.message_id = n.message_id
    WHERE c.message_id = n.message_id;
    RETURN NULL;
END $$;
CREATE TRIGGER comments_blog_reply_author AFTER INSERT ON comments
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION comments_blog_reply_author();

CREATE FUNCTION comments_fts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO comments_fts (message_id, document)
        SELECT message_id, to_tsvector('conversation_search', clean_content) FROM inserted
        ON CONFLICT (message_id) DO UPDATE SET document = excluded.document;
    RETURN NULL;
END $$;
CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION comments_fts_insert();

-- posts.version: one bump per post the statement touched (the web cache only needs it to change).
CREATE FUNCTION comments_version_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE posts SET version = version + 1 WHERE id IN (SELECT post_id FROM inserted);
    RETURN NULL;
END $$;
CREATE TRIGGER comments_version_insert AFTER INSERT ON comments
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION comments_version_insert();

-- The webhook outbox: events only while some webhook is configured, never for comments of users who
-- opted out, never for hidden, deleted or blog-made rows.
CREATE FUNCTION webhook_comment_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_targets) THEN
        INSERT INTO webhook_outbox (type, post_id, message_id)
            SELECT 'comment.created', n.post_id, n.message_id FROM inserted n
            WHERE n.origin = 'discord' AND n.deleted_at IS NULL AND n.hidden = 0
              AND NOT EXISTS (SELECT 1 FROM user_privacy p WHERE p.user_id = n.author_id AND p.opted_out = 1)
            ORDER BY n.message_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_comment_created AFTER INSERT ON comments
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION webhook_comment_created();
