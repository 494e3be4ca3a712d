-- Webhooks for blog owners: an outbox filled by triggers in the same transaction as the change
-- (nothing is lost across restarts, and capturing a comment runs no extra Python), and one
-- delivery cursor per configured URL. Events are recorded only while some webhook is configured
-- (webhook_targets has rows; the bot syncs it with WEBHOOK_URLS at start-up). Who may see the
-- comment (hidden, opted out, public channel) is checked again when the event is delivered.
-- AUTOINCREMENT: ids must never be reused once delivered events are deleted (the cursors compare ids).
CREATE TABLE webhook_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    type       TEXT NOT NULL CHECK (type IN ('comment.created', 'comment.edited', 'comment.deleted',
                                             'post.thread_created')),
    post_id    INTEGER NOT NULL,
    message_id INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')
);

CREATE TABLE webhook_targets (
    url             TEXT PRIMARY KEY,
    delivered_up_to INTEGER NOT NULL,           -- last outbox id done with (delivered, or given up)
    failures        INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts at the next event
    first_failed_at TEXT,                       -- when the next event first failed
    next_attempt_at TEXT,
    last_error      TEXT                        -- short reason, for the log
);

CREATE TRIGGER webhook_comment_created AFTER INSERT ON comments
    WHEN new.origin = 'discord' AND new.deleted_at IS NULL AND new.hidden = 0
         AND EXISTS (SELECT 1 FROM webhook_targets)
         AND NOT EXISTS (SELECT 1 FROM user_privacy p WHERE p.user_id = new.author_id AND p.opted_out = 1) BEGIN
    INSERT INTO webhook_outbox (type, post_id, message_id) VALUES ('comment.created', new.post_id, new.message_id);
END;

CREATE TRIGGER webhook_comment_edited AFTER UPDATE OF content ON comments
    WHEN new.origin = 'discord' AND old.deleted_at IS NULL AND new.deleted_at IS NULL
         AND new.content IS NOT old.content AND new.hidden = 0 AND EXISTS (SELECT 1 FROM webhook_targets)
         AND NOT EXISTS (SELECT 1 FROM user_privacy p WHERE p.user_id = new.author_id AND p.opted_out = 1) BEGIN
    INSERT INTO webhook_outbox (type, post_id, message_id) VALUES ('comment.edited', new.post_id, new.message_id);
END;

CREATE TRIGGER webhook_comment_deleted AFTER UPDATE OF deleted_at ON comments
    WHEN new.origin = 'discord' AND old.deleted_at IS NULL AND new.deleted_at IS NOT NULL AND old.hidden = 0
         AND EXISTS (SELECT 1 FROM webhook_targets)
         -- the tombstone erases the author: whether they opted out is known only from old.author_id
         AND NOT EXISTS (SELECT 1 FROM user_privacy p WHERE p.user_id = old.author_id AND p.opted_out = 1) BEGIN
    INSERT INTO webhook_outbox (type, post_id, message_id) VALUES ('comment.deleted', new.post_id, new.message_id);
END;

CREATE TRIGGER webhook_thread_created AFTER INSERT ON threads
    WHEN EXISTS (SELECT 1 FROM webhook_targets) BEGIN
    INSERT INTO webhook_outbox (type, post_id, message_id) VALUES ('post.thread_created', new.post_id, NULL);
END;
