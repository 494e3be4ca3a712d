-- The whole schema of conversation-engine, version 1.
-- Times are ISO 8601 strings in UTC (datetime.isoformat(), "+00:00"), so they sort as text.
-- Discord ids (snowflakes) are INTEGER.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- NULL in a setting column means "use the process-wide setting from the environment".
CREATE TABLE guild_settings (
    guild_id                    INTEGER PRIMARY KEY,
    announcements_per_cycle     INTEGER CHECK (announcements_per_cycle BETWEEN 1 AND 50),
    thread_auto_archive_minutes INTEGER CHECK (thread_auto_archive_minutes IN (60, 1440, 4320, 10080)),
    intent_warning_sent_at      TEXT,
    updated_at                  TEXT NOT NULL
);

CREATE TABLE feeds (
    id                   INTEGER PRIMARY KEY,
    guild_id             INTEGER NOT NULL,
    url                  TEXT NOT NULL,
    channel_id           INTEGER NOT NULL,
    channel_kind         TEXT NOT NULL DEFAULT 'text' CHECK (channel_kind IN ('text', 'news', 'forum')),
    title                TEXT,
    ping_role_id         INTEGER,
    backfill             INTEGER NOT NULL DEFAULT 1 CHECK (backfill >= 0),
    etag                 TEXT,
    last_modified        TEXT,
    body_hash            TEXT,
    initialized          INTEGER NOT NULL DEFAULT 0,   -- first successful fetch recorded its items as seen
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_polled_at       TEXT,
    last_success_at      TEXT,
    next_poll_at         TEXT,
    paused               INTEGER NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    disabled_notified    INTEGER NOT NULL DEFAULT 0,
    moved_from_url       TEXT,                         -- set by a permanent redirect until the admins were told
    created_at           TEXT NOT NULL,
    UNIQUE (guild_id, url)
);
CREATE INDEX feeds_next_poll ON feeds (next_poll_at) WHERE paused = 0 AND disabled_reason IS NULL;

CREATE TABLE posts (
    id            INTEGER PRIMARY KEY,
    guild_id      INTEGER NOT NULL,
    canonical_url TEXT NOT NULL,
    guid          TEXT,
    feed_id       INTEGER REFERENCES feeds (id) ON DELETE SET NULL,
    feed_title    TEXT,
    title         TEXT NOT NULL,
    author        TEXT,
    summary       TEXT NOT NULL DEFAULT '',
    published_at  TEXT NOT NULL,
    updated_at    TEXT,
    image_url     TEXT,
    categories    TEXT NOT NULL DEFAULT '[]',          -- JSON array of strings
    content_hash  TEXT NOT NULL DEFAULT '',            -- hash of title, link and summary: changes mean "updated"
    first_seen_at TEXT NOT NULL,
    UNIQUE (guild_id, canonical_url)
);
CREATE INDEX posts_guild_published ON posts (guild_id, published_at DESC);
CREATE INDEX posts_feed ON posts (feed_id);             -- per-feed counts; ON DELETE SET NULL

-- Which item identities a feed has already yielded (so the same item is never new twice).
CREATE TABLE feed_items (
    feed_id  INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    post_id  INTEGER REFERENCES posts (id) ON DELETE CASCADE,
    seen_at  TEXT NOT NULL,
    PRIMARY KEY (feed_id, identity)
);
CREATE INDEX feed_items_post ON feed_items (post_id);  -- ON DELETE CASCADE from posts

-- One announcement per post: queued (waiting for its turn) -> pending (row written before the send)
-- -> sent (message id stored) -> threaded (thread id stored); failed with a reason; skipped (backfill).
CREATE TABLE announcements (
    id              INTEGER PRIMARY KEY,
    post_id         INTEGER NOT NULL UNIQUE REFERENCES posts (id) ON DELETE CASCADE,
    guild_id        INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'pending', 'sent', 'threaded', 'failed', 'skipped')),
    message_id      INTEGER,
    thread_id       INTEGER,
    error           TEXT,
    error_code      INTEGER,
    error_reported  INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    needs_edit      INTEGER NOT NULL DEFAULT 0,        -- the post changed after it was announced
    announced_at    TEXT,                              -- when it first became pending: the flood budget counts it
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX announcements_state ON announcements (state, channel_id);
CREATE INDEX announcements_recent ON announcements (announced_at) WHERE announced_at IS NOT NULL;
CREATE INDEX announcements_needs_edit ON announcements (state, updated_at) WHERE needs_edit = 1;

-- The Discord thread (or forum post) that is a post's discussion.
CREATE TABLE threads (
    thread_id          INTEGER PRIMARY KEY,
    post_id            INTEGER NOT NULL UNIQUE REFERENCES posts (id) ON DELETE CASCADE,
    guild_id           INTEGER NOT NULL,
    parent_channel_id  INTEGER NOT NULL,
    starter_message_id INTEGER,
    name               TEXT NOT NULL,
    archived           INTEGER NOT NULL DEFAULT 0,
    locked             INTEGER NOT NULL DEFAULT 0,
    deleted_at         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    last_reconciled_at TEXT
);

-- A comment is a Discord message in a post's thread (message_id = the snowflake), or a comment
-- imported from an old comment system (negative message_id, origin/origin_key identify it).
CREATE TABLE comments (
    message_id        INTEGER PRIMARY KEY,
    post_id           INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    thread_id         INTEGER,
    author_id         INTEGER,
    author_name       TEXT NOT NULL,
    author_avatar_url TEXT,
    is_bot            INTEGER NOT NULL DEFAULT 0,
    content           TEXT NOT NULL DEFAULT '',
    clean_content     TEXT NOT NULL DEFAULT '',
    extras            TEXT NOT NULL DEFAULT '[]',      -- JSON: stickers and link embeds as {kind, name, url}
    created_at        TEXT NOT NULL,
    edited_at         TEXT,
    deleted_at        TEXT,
    reply_to          INTEGER,                          -- message_id of the replied-to comment (same thread)
    hidden            INTEGER NOT NULL DEFAULT 0,
    origin            TEXT NOT NULL DEFAULT 'discord' CHECK (origin IN ('discord', 'wxr', 'disqus')),
    origin_key        TEXT,
    fts_indexed       INTEGER NOT NULL DEFAULT 0,       -- 1 once clean_content is in comments_fts
    UNIQUE (origin, origin_key)
);
CREATE INDEX comments_unindexed ON comments (message_id) WHERE fts_indexed = 0;
CREATE INDEX comments_post_created ON comments (post_id, created_at);
CREATE INDEX comments_thread ON comments (thread_id, message_id);
CREATE INDEX comments_author ON comments (author_id);

CREATE TABLE comment_revisions (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES comments (message_id) ON DELETE CASCADE,
    content     TEXT NOT NULL,
    replaced_at TEXT NOT NULL                           -- when this content stopped being current
);
CREATE INDEX comment_revisions_message ON comment_revisions (message_id);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES comments (message_id) ON DELETE CASCADE,
    attachment_id INTEGER,
    filename      TEXT NOT NULL,
    url           TEXT NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0,
    content_type  TEXT,
    UNIQUE (message_id, attachment_id)
);

CREATE TABLE reactions (
    message_id INTEGER NOT NULL REFERENCES comments (message_id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,                           -- unicode emoji, or name:id for custom ones
    count      INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (message_id, emoji)
) WITHOUT ROWID;

CREATE TABLE user_privacy (
    user_id       INTEGER PRIMARY KEY,
    opted_out     INTEGER NOT NULL DEFAULT 0,
    changed_at    TEXT NOT NULL
);

-- Full-text search: external-content FTS5 tables kept in sync by triggers.
CREATE VIRTUAL TABLE posts_fts USING fts5 (
    title, summary,
    content = 'posts', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts (rowid, title, summary) VALUES (new.id, new.title, new.summary);
END;
CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, summary) VALUES ('delete', old.id, old.title, old.summary);
END;
CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, summary ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, summary) VALUES ('delete', old.id, old.title, old.summary);
    INSERT INTO posts_fts (rowid, title, summary) VALUES (new.id, new.title, new.summary);
END;

-- columnsize=0: comment search ranks its bounded candidate set itself (bot/lookup/rank.py) and
-- never calls bm25(), so per-row sizes would only cost a write per message.
CREATE VIRTUAL TABLE comments_fts USING fts5 (
    clean_content,
    content = 'comments', content_rowid = 'message_id',
    tokenize = 'unicode61 remove_diacritics 2', columnsize = 0
);
-- New comments are indexed by the writer, not by an INSERT trigger: in the same transaction when the
-- write queue is idle, in bounded chunks after a burst (bot/storage/fts.py), so a burst of messages
-- is stored at full speed and becomes searchable right after. Changes to rows already indexed are
-- kept in sync here.
CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments WHEN old.fts_indexed = 1 BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, clean_content) VALUES ('delete', old.message_id, old.clean_content);
END;
CREATE TRIGGER comments_fts_update AFTER UPDATE OF clean_content ON comments WHEN old.fts_indexed = 1 BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, clean_content) VALUES ('delete', old.message_id, old.clean_content);
    INSERT INTO comments_fts (rowid, clean_content) VALUES (new.message_id, new.clean_content);
END;
