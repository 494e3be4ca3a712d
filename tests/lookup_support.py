"""Seeding helpers for lookup tests: rows written straight into a real database."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta

from bot.storage.db import Database, to_db_time
from tests.web_support import add_reaction, opt_out  # noqa: F401 - one seed helper each for reactions, opt-outs

GUILD = 100000000000000001
OTHER_GUILD = 100000000000000002
BASE_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DISCORD_EPOCH_MS = 1_420_070_400_000
_sequence = itertools.count(1)


def snowflake_at(moment: datetime, sequence: int) -> int:
    """A Discord id made at ``moment`` (ids encode their creation time, as Discord's do)."""
    return ((int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22) | (sequence % 4096)


async def add_post(database: Database, title: str, *, guild_id: int = GUILD, summary: str = "",
                   url: str | None = None, published: datetime | None = None,
                   thread_id: int | None = None, author: str | None = None) -> int:
    published = published or BASE_TIME
    url = url or f"https://blog.example.com/{abs(hash((title, guild_id, published))) % 10**9}"

    def op(connection: sqlite3.Connection) -> int:
        now = to_db_time(published)
        cursor = connection.execute(
            "INSERT INTO posts (guild_id, canonical_url, title, author, summary, published_at, first_seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (guild_id, url, title, author, summary, now, now),
        )
        post_id = int(cursor.fetchone()[0])
        if thread_id is not None:
            connection.execute(
                "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (thread_id, post_id, guild_id, 200000000000000001, title[:100] or "x", now, now),
            )
        return post_id

    return await database.write(op)


async def add_comment(database: Database, post_id: int, text: str, *, author_id: int = 1,
                      author_name: str = "reader", thread_id: int | None = None,
                      created: datetime | None = None, is_bot: bool = False, hidden: bool = False,
                      deleted: bool = False, message_id: int | None = None) -> int:
    sequence = next(_sequence)
    created = created or BASE_TIME + timedelta(seconds=sequence)
    message_id = message_id or snowflake_at(created, sequence)

    def op(connection: sqlite3.Connection) -> int:
        connection.execute(
            "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, is_bot, content, "
            "clean_content, created_at, hidden, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, post_id, thread_id, author_id, author_name, int(is_bot),
             "" if deleted else text, "" if deleted else text, to_db_time(created), int(hidden),
             to_db_time(created) if deleted else None),
        )
        return message_id

    return await database.write(op)


