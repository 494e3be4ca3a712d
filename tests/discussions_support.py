"""Helpers for the discussion tests: a post with its discussion thread, messages, a history."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

from bot.discussions.service import ThreadGone
from bot.model.messages import IncomingMessage, ThreadChange
from bot.storage.db import Database, to_db_time, utcnow

GUILD_ID = 900_000_000_000_000_001
PARENT_CHANNEL_ID = 900_000_000_000_000_002
BOT_USER_ID = 900_000_000_000_000_003
ALICE = 900_000_000_000_000_010
BOB = 900_000_000_000_000_011
OTHER_BOT = 900_000_000_000_000_012

_ids = count(1)


def next_snowflake(at: datetime | None = None) -> int:
    """A fresh, increasing Discord id made at ``at`` (now by default)."""
    moment = at or utcnow()
    millis = int(moment.timestamp() * 1000) - 1_420_070_400_000
    return (millis << 22) | (next(_ids) % (1 << 22))


async def add_post_thread(database: Database, thread_id: int, *, title: str = "A post",
                          guild_id: int = GUILD_ID, parent_channel_id: int = PARENT_CHANNEL_ID,
                          starter_message_id: int | None = None) -> int:
    """Insert a post and its ``threads`` row (what the announcements code writes); returns post id."""
    now = to_db_time(utcnow())

    def op(connection: sqlite3.Connection) -> int:
        cursor = connection.execute(
            "INSERT INTO posts (guild_id, canonical_url, title, published_at, first_seen_at) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id", (guild_id, f"https://blog.example/{thread_id}", title, now, now))
        post_id = int(cursor.fetchone()[0])
        connection.execute(
            "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, starter_message_id, name, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (thread_id, post_id, guild_id, parent_channel_id, starter_message_id, title, now, now))
        return post_id

    return await database.write(op)


def message(channel_id: int, content: str = "hello there", *, author_id: int = ALICE,
            author_name: str = "Alice", message_id: int | None = None, **fields: object) -> IncomingMessage:
    message_id = message_id or next_snowflake()
    base = IncomingMessage(
        message_id=message_id, channel_id=channel_id, guild_id=GUILD_ID, author_id=author_id,
        author_name=author_name, author_avatar_url=f"https://cdn.example/{author_id}.png",
        author_is_bot=False, message_type=0, content=content)
    return replace(base, **fields)  # type: ignore[arg-type]


def edited(original: IncomingMessage, content: str, *, after: timedelta = timedelta(seconds=5)) -> IncomingMessage:
    return replace(original, content=content, edited_at=(original.edited_at or original.created_at) + after)


class FakeHistory:
    """A thread's messages as Discord would list them (the HistorySource protocol, in memory)."""

    def __init__(self) -> None:
        self.messages: dict[int, dict[int, IncomingMessage]] = {}
        self.states: dict[int, ThreadChange] = {}
        self.gone: set[int] = set()
        self.pages_served = 0
        # Runs while a page request is "in flight", after Discord took its snapshot.
        self.while_fetching: Callable[[], Awaitable[None]] | None = None
        self.while_fetching_newest: Callable[[], Awaitable[None]] | None = None

    def put(self, *messages: IncomingMessage) -> None:
        for item in messages:
            self.messages.setdefault(item.channel_id, {})[item.message_id] = item

    def remove(self, channel_id: int, message_id: int) -> None:
        del self.messages[channel_id][message_id]

    async def thread_state(self, thread_id: int) -> ThreadChange:
        if thread_id in self.gone:
            raise ThreadGone(thread_id)
        return self.states.get(thread_id, ThreadChange(thread_id, archived=False, locked=False))

    async def page(self, thread_id: int, *, before: int | None = None, after: int | None = None,
                   limit: int = 100) -> list[IncomingMessage]:
        if thread_id in self.gone:
            raise ThreadGone(thread_id)
        self.pages_served += 1
        ids = sorted(self.messages.get(thread_id, {}))
        if after is not None:
            chosen = [i for i in ids if i > after][:limit]
        else:
            chosen = [i for i in ids if before is None or i < before][-limit:]
        result = [self.messages[thread_id][i] for i in reversed(chosen)]
        if self.while_fetching is not None:
            hook, self.while_fetching = self.while_fetching, None
            await hook()
        if self.while_fetching_newest is not None and before is None and after is None:
            hook, self.while_fetching_newest = self.while_fetching_newest, None
            await hook()
        return result


def at(seconds_ago: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)


# ------------------------------------------------------------------------------------------------
# With the Discord emulator: our ConversationBot, a post's thread, and waiting on the database.

async def eventually(check: Callable[[], Awaitable[object]], *, timeout: float = 8.0,  # noqa: ASYNC109
                     what: str = "condition") -> object:
    """Poll ``check`` (an async read of the database, say) until it returns something truthy."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def indexed_comments(database: Database, word: str) -> list[int]:
    """The comments the search index finds for ``word`` (oldest first), on either engine."""
    if database.engine == "postgresql":
        sql = ("SELECT message_id FROM comments_fts WHERE document @@ to_tsquery('conversation_search', ?) "
               "ORDER BY message_id")
    else:
        sql = "SELECT rowid FROM comments_fts WHERE comments_fts MATCH ? ORDER BY rowid"
    return [int(row[0]) for row in await database.fetch_all(sql, (word,))]
