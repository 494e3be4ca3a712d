"""SQL of the per-feed filters (``feed_filters``) and of the posts a filter is tried on."""

from __future__ import annotations

from dataclasses import dataclass

from bot.model.posts import parse_categories
from bot.storage.db import Database, to_db_time, utcnow
from bot.storage.sql import Connection


@dataclass(frozen=True, slots=True)
class StoredFilter:
    include: str | None
    exclude: str | None


@dataclass(frozen=True, slots=True)
class RecentPost:
    title: str
    canonical_url: str
    summary: str
    categories: tuple[str, ...]
    filtered: bool


async def get_filter(database: Database, feed_id: int) -> StoredFilter | None:
    row = await database.fetch_one("SELECT include, exclude FROM feed_filters WHERE feed_id = ?", (feed_id,))
    return None if row is None else StoredFilter(row["include"], row["exclude"])


def get_filter_sync(connection: Connection, feed_id: int) -> StoredFilter | None:
    row = connection.execute("SELECT include, exclude FROM feed_filters WHERE feed_id = ?", (feed_id,)).fetchone()
    return None if row is None else StoredFilter(row[0], row[1])


async def filters_of_guild(database: Database, guild_id: int) -> dict[int, StoredFilter]:
    rows = await database.fetch_all(
        "SELECT ff.feed_id, ff.include, ff.exclude FROM feed_filters AS ff JOIN feeds AS f ON f.id = ff.feed_id "
        "WHERE f.guild_id = ?", (guild_id,))
    return {int(row["feed_id"]): StoredFilter(row["include"], row["exclude"]) for row in rows}


async def save_filter(database: Database, feed_id: int, include: str | None, exclude: str | None) -> None:
    """Set the feed's filter; both rules None clears it."""
    def op(connection: Connection) -> None:
        if include is None and exclude is None:
            connection.execute("DELETE FROM feed_filters WHERE feed_id = ?", (feed_id,))
            return
        connection.execute(
            "INSERT INTO feed_filters (feed_id, include, exclude, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (feed_id) DO UPDATE SET include = excluded.include, exclude = excluded.exclude, "
            "updated_at = excluded.updated_at", (feed_id, include, exclude, to_db_time(utcnow())))

    await database.write(op)


async def recent_posts(database: Database, feed_id: int, limit: int = 10) -> list[RecentPost]:
    """The feed's newest stored posts, for ``/feed test``."""
    rows = await database.fetch_all(
        "SELECT p.title, p.canonical_url, p.summary, p.categories, coalesce(a.filtered, 0) AS filtered "
        "FROM posts AS p LEFT JOIN announcements AS a ON a.post_id = p.id WHERE p.feed_id = ? "
        "ORDER BY p.published_at DESC, p.id DESC LIMIT ?", (feed_id, limit))
    return [RecentPost(row["title"], row["canonical_url"], row["summary"] or "",
                       parse_categories(row["categories"]), bool(row["filtered"])) for row in rows]
