-- Replying from the blog (sign in with Discord, the comment is posted through a webhook).
--
-- web_sessions: a signed-in reader of the blog. The token itself is only with the reader (in the blog
-- origin's localStorage); the server keeps its SHA-256. Valid until expires_at unless revoked.
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    user_name   TEXT NOT NULL,
    avatar_url  TEXT,
    origin      TEXT NOT NULL,                            -- the blog origin the token was handed to
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- blog_replies: the Discord messages the bot posted through its webhook for a signed-in reader. The
-- message's author on Discord is the webhook; the comment belongs to the reader.
CREATE TABLE blog_replies (
    message_id        INTEGER PRIMARY KEY,
    thread_id         INTEGER NOT NULL,
    author_id         INTEGER NOT NULL,
    author_name       TEXT NOT NULL,
    author_avatar_url TEXT,
    reply_to          INTEGER,                          -- the comment it answers (a webhook cannot reply)
    created_at        TEXT NOT NULL
);
CREATE INDEX blog_replies_author ON blog_replies (author_id);

-- The capture stores the webhook message like any other (it may arrive before or after the row
-- above is written): whichever comes second attributes the comment to the reader. A trigger, so
-- that no capture path (live, catch-up, reconcile) can forget it.
CREATE TRIGGER comments_blog_reply_author AFTER INSERT ON comments
WHEN EXISTS (SELECT 1 FROM blog_replies WHERE message_id = new.message_id)
BEGIN
    UPDATE comments
    SET author_id = (SELECT author_id FROM blog_replies WHERE message_id = new.message_id),
        author_name = (SELECT author_name FROM blog_replies WHERE message_id = new.message_id),
        author_avatar_url = (SELECT author_avatar_url FROM blog_replies WHERE message_id = new.message_id),
        is_bot = 0,
        reply_to = COALESCE((SELECT reply_to FROM blog_replies WHERE message_id = new.message_id), new.reply_to)
    WHERE message_id = new.message_id;
END;
