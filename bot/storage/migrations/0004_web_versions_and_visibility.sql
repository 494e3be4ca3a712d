-- The blog side's cache keys and who may see a discussion.
--
-- posts.version: bumped by triggers on every write that changes what the web API shows for the post
-- (its comments, their attachments, reactions and revisions, its thread, the visibility of the
-- thread's channel, the post's own fields, and any opt-out). The web server keeps each discussion
-- encoded in memory keyed by (post, version) and uses the version as the ETag, so a 304 costs one
-- lookup. Triggers rather than code in every writer: no write path can forget to invalidate.
ALTER TABLE posts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- Whether @everyone can view a channel that holds discussion threads (text/news channel or forum).
-- The bot records it when it announces in the channel, at start-up and when the channel's
-- overwrites or the @everyone role change. No row = not known yet = private: the web server serves
-- only threads of channels known to be public (unless WEB_INCLUDE_PRIVATE=true).
CREATE TABLE channel_visibility (
    channel_id INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    public     INTEGER NOT NULL CHECK (public IN (0, 1)),
    checked_at TEXT NOT NULL
);

CREATE TRIGGER posts_version_fields AFTER UPDATE OF canonical_url, title, author, published_at ON posts BEGIN
    UPDATE posts SET version = version + 1 WHERE id = new.id;
END;

CREATE TRIGGER comments_version_insert AFTER INSERT ON comments BEGIN
    UPDATE posts SET version = version + 1 WHERE id = new.post_id;
END;
CREATE TRIGGER comments_version_update AFTER UPDATE ON comments BEGIN
    UPDATE posts SET version = version + 1 WHERE id IN (old.post_id, new.post_id);
END;
CREATE TRIGGER comments_version_delete AFTER DELETE ON comments BEGIN
    UPDATE posts SET version = version + 1 WHERE id = old.post_id;
END;

CREATE TRIGGER attachments_version_insert AFTER INSERT ON attachments BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = new.message_id);
END;
CREATE TRIGGER attachments_version_update AFTER UPDATE ON attachments BEGIN
    UPDATE posts SET version = version + 1
        WHERE id IN (SELECT post_id FROM comments WHERE message_id IN (old.message_id, new.message_id));
END;
CREATE TRIGGER attachments_version_delete AFTER DELETE ON attachments BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = old.message_id);
END;

CREATE TRIGGER reactions_version_insert AFTER INSERT ON reactions BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = new.message_id);
END;
CREATE TRIGGER reactions_version_update AFTER UPDATE ON reactions BEGIN
    UPDATE posts SET version = version + 1
        WHERE id IN (SELECT post_id FROM comments WHERE message_id IN (old.message_id, new.message_id));
END;
CREATE TRIGGER reactions_version_delete AFTER DELETE ON reactions BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = old.message_id);
END;

CREATE TRIGGER comment_revisions_version_insert AFTER INSERT ON comment_revisions BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = new.message_id);
END;
CREATE TRIGGER comment_revisions_version_delete AFTER DELETE ON comment_revisions BEGIN
    UPDATE posts SET version = version + 1
        WHERE id = (SELECT post_id FROM comments WHERE message_id = old.message_id);
END;

CREATE TRIGGER threads_version_insert AFTER INSERT ON threads BEGIN
    UPDATE posts SET version = version + 1 WHERE id = new.post_id;
END;
CREATE TRIGGER threads_version_update AFTER UPDATE ON threads BEGIN
    UPDATE posts SET version = version + 1 WHERE id IN (old.post_id, new.post_id);
END;
CREATE TRIGGER threads_version_delete AFTER DELETE ON threads BEGIN
    UPDATE posts SET version = version + 1 WHERE id = old.post_id;
END;

CREATE TRIGGER channel_visibility_version_insert AFTER INSERT ON channel_visibility BEGIN
    UPDATE posts SET version = version + 1
        WHERE id IN (SELECT post_id FROM threads WHERE parent_channel_id = new.channel_id);
END;
CREATE TRIGGER channel_visibility_version_update AFTER UPDATE OF public ON channel_visibility
    WHEN old.public IS NOT new.public BEGIN
    UPDATE posts SET version = version + 1
        WHERE id IN (SELECT post_id FROM threads WHERE parent_channel_id = new.channel_id);
END;
CREATE TRIGGER channel_visibility_version_delete AFTER DELETE ON channel_visibility BEGIN
    UPDATE posts SET version = version + 1
        WHERE id IN (SELECT post_id FROM threads WHERE parent_channel_id = old.channel_id);
END;
CREATE INDEX threads_parent_channel ON threads (parent_channel_id);

-- An opt-out hides the user's comments and turns mentions of them into "@someone" on any post:
-- every post changes (opt-outs are rare; one pass over posts is cheap).
CREATE TRIGGER user_privacy_version_insert AFTER INSERT ON user_privacy BEGIN
    UPDATE posts SET version = version + 1;
END;
CREATE TRIGGER user_privacy_version_update AFTER UPDATE ON user_privacy BEGIN
    UPDATE posts SET version = version + 1;
END;
CREATE TRIGGER user_privacy_version_delete AFTER DELETE ON user_privacy BEGIN
    UPDATE posts SET version = version + 1;
END;
