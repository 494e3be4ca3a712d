-- SQLite 0007_feed_filters.sql on PostgreSQL. Per-feed filters (/feed filter): a new post is
-- announced only if it matches the include rule (when there is one) and not the exclude rule. Each
-- rule is as the admin typed it: words, or a regular expression between slashes
-- (bot/feeds/filters.py). No row: no filter.
CREATE TABLE feed_filters (
    feed_id    bigint PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
    include    text,
    exclude    text,
    updated_at text NOT NULL
);
-- A post the filter dropped is stored (it has its page, /post show can open its thread) with a
-- 'skipped' announcement marked filtered = 1: never announced, never backlog.
ALTER TABLE announcements ADD COLUMN filtered integer NOT NULL DEFAULT 0;
