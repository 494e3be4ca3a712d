"""Helpers for the announcement tests: rows inserted directly, and waiting for what the bot did (the
bot itself runs with ``tests.conftest.running_bot``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.app import ConversationBot
from bot.storage.db import Database, to_db_time, utcnow
from bot.storage.posts import content_hash
from tests.conftest import bot_log
from tests.fakediscord import FakeDiscord, Message

BASE_TIME = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class QueuedPost:
    post_id: int
    announcement_id: int
    url: str
    title: str


async def add_feed(database: Database, guild_id: int, channel_id: int, *, url: str = "https://blog.example/feed",
                   channel_kind: str = "text", ping_role_id: int | None = None, title: str = "Example Blog") -> int:
    def op(connection: sqlite3.Connection) -> int:
        now = to_db_time(utcnow())
        cursor = connection.execute(
            "INSERT INTO feeds (guild_id, url, channel_id, channel_kind, title, ping_role_id, initialized, "
            "paused, created_at) VALUES (?, ?, ?, ?, ?, ?, 1, 1, ?) RETURNING id",
            (guild_id, url, channel_id, channel_kind, title, ping_role_id, now))
        return int(cursor.fetchone()[0])

    return await database.write(op)


async def queue_post(database: Database, guild_id: int, channel_id: int, *, title: str, url: str | None = None,
                     published_at: datetime | None = None, categories: Sequence[str] = (),
                     summary: str = "A short summary of the post.", author: str | None = "Ada",
                     image_url: str | None = None, feed_id: int | None = None,
                     feed_title: str | None = "Example Blog", state: str = "queued") -> QueuedPost:
    """A post as the feed code stores it, with its announcement row."""
    link = url or f"https://blog.example/posts/{hashlib.sha1(title.encode()).hexdigest()[:12]}"
    published = published_at or BASE_TIME

    def op(connection: sqlite3.Connection) -> QueuedPost:
        now = to_db_time(utcnow())
        cursor = connection.execute(
            "INSERT INTO posts (guild_id, canonical_url, feed_id, feed_title, title, author, summary, published_at, "
            "image_url, categories, content_hash, first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (guild_id, link, feed_id, feed_title, title, author, summary, to_db_time(published), image_url,
             json.dumps(list(categories)), content_hash(title, link, summary), now))
        post_id = int(cursor.fetchone()[0])
        cursor = connection.execute(
            "INSERT INTO announcements (post_id, guild_id, channel_id, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (post_id, guild_id, channel_id, state, now, now))
        return QueuedPost(post_id, int(cursor.fetchone()[0]), link, title)

    return await database.write(op)


async def update_post(database: Database, post: QueuedPost, *, title: str, summary: str = "Updated summary.") -> None:
    """What the feed code does when an announced post changed."""
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE posts SET title = ?, summary = ?, content_hash = ? WHERE id = ?",
                           (title, summary, content_hash(title, post.url, summary), post.post_id))
        connection.execute("UPDATE announcements SET needs_edit = 1 WHERE post_id = ?", (post.post_id,))

    await database.write(op)


async def announcement(database: Database, announcement_id: int) -> dict[str, Any]:
    row = await database.fetch_one("SELECT * FROM announcements WHERE id = ?", (announcement_id,))
    assert row is not None
    return dict(row)


async def thread_rows(database: Database) -> list[dict[str, Any]]:
    return [dict(row) for row in await database.fetch_all("SELECT * FROM threads ORDER BY post_id")]


def announcement_messages(emu: FakeDiscord, channel_id: int, url: str | None = None) -> list[Message]:
    """The bot's announcement messages (with an embed) in a channel, oldest first."""
    return [m for m in emu.bot_messages(channel_id)
            if m.embeds and (url is None or m.embeds[0].get("url") == url)]


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll a condition on our own side (the database, say) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def cog_of(bot: ConversationBot) -> Any:
    cog = bot.get_cog("Announcements")
    assert cog is not None
    return cog


async def first_cycle(bot: ConversationBot) -> None:
    """Until the start-up announcement cycle is over (the cog logs the end of each cycle)."""
    await bot_log(bot).wait_for("announcement cycle done")


def later(minutes: int) -> datetime:
    return BASE_TIME + timedelta(minutes=minutes)
