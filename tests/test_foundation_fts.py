"""Comments are indexed for search by the writer: at once when it is idle, in chunks after a burst."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import Database
from bot.storage.fts import CHUNK

POST = 1


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "conversation.db")

    def add_post(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
                           "VALUES (?, 1, 'https://blog.example/p', 'A post', '2026', '2026')", (POST,))

    await db.write(add_post)
    try:
        yield db
    finally:
        await db.close()


def insert_comment(message_id: int, text: str):  # type: ignore[no-untyped-def]
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO comments (message_id, post_id, author_name, content, clean_content, "
                           "created_at) VALUES (?, ?, 'alice', ?, ?, '2026')", (message_id, POST, text, text))

    return op


def set_text(message_id: int, text: str):  # type: ignore[no-untyped-def]
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE comments SET content = ?, clean_content = ? WHERE message_id = ?",
                           (text, text, message_id))

    return op


def delete_comment(message_id: int):  # type: ignore[no-untyped-def]
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("DELETE FROM comments WHERE message_id = ?", (message_id,))

    return op


async def matches(database: Database, query: str) -> list[int]:
    rows = await database.fetch_all("SELECT rowid FROM comments_fts WHERE comments_fts MATCH ? ORDER BY rowid",
                                    (query,))
    return [int(row[0]) for row in rows]


async def test_a_lone_comment_is_searchable_when_its_write_returns(database: Database) -> None:
    await database.write(insert_comment(10, "static sites are fast"))
    assert await matches(database, "static") == [10]


async def test_a_burst_is_indexed_in_chunks_and_flush_waits_for_it(database: Database) -> None:
    count = CHUNK * 3 + 17
    for number in range(count):
        await database.enqueue(insert_comment(1000 + number, f"burst message {number}"))
    await database.flush()
    assert len(await matches(database, "burst")) == count
    assert await database.fetch_value("SELECT count(*) FROM comments WHERE fts_indexed = 0") == 0
    integrity = "INSERT INTO comments_fts (comments_fts, rank) VALUES ('integrity-check', 1)"
    await database.write(lambda connection: connection.execute(integrity))


async def test_edits_and_deletes_keep_the_index_exact(database: Database) -> None:
    await database.write(insert_comment(20, "original words"))
    await database.write(set_text(20, "edited words"))
    assert await matches(database, "original") == [] and await matches(database, "edited") == [20]
    # A comment changed or deleted before it was indexed must not leave stale entries either.
    for number in range(50):
        await database.enqueue(insert_comment(100 + number, "pending text"))
    await database.enqueue(set_text(100, "changed before indexing"))
    await database.enqueue(delete_comment(101))
    await database.write(delete_comment(20))
    await database.flush()
    assert await matches(database, "edited") == []
    assert 101 not in await matches(database, "pending") and 100 not in await matches(database, "pending")
    assert await matches(database, "changed") == [100]
    integrity = "INSERT INTO comments_fts (comments_fts, rank) VALUES ('integrity-check', 1)"
    await database.write(lambda connection: connection.execute(integrity))
