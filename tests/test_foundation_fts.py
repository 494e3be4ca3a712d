"""Comments are indexed for search by triggers, in the statement that stores, edits or deletes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.storage import Database
from bot.storage.db import connect_sync
from bot.storage.migrate import apply_migrations, available_migrations, current_version, latest_version

POST = 1
INTEGRITY = "INSERT INTO comments_fts (comments_fts, rank) VALUES ('integrity-check', 1)"


@pytest.fixture
async def database(database: Database) -> Database:
    """The shared database with the one post the comments belong to."""
    def add_post(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
                           "VALUES (?, 1, 'https://blog.example/p', 'A post', '2026', '2026')", (POST,))

    await database.write(add_post)
    return database


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


async def test_a_burst_is_searchable_once_flushed(database: Database) -> None:
    count = 2_345
    for number in range(count):
        await database.enqueue(insert_comment(1000 + number, f"burst message {number}"))
    await database.flush()
    assert len(await matches(database, "burst")) == count
    await database.write(lambda connection: connection.execute(INTEGRITY))


async def test_edits_and_deletes_keep_the_index_exact(database: Database) -> None:
    await database.write(insert_comment(20, "original words"))
    await database.write(set_text(20, "edited words"))
    assert await matches(database, "original") == [] and await matches(database, "edited") == [20]
    # Changed and deleted in the same batch as they were stored: no stale entries either.
    for number in range(50):
        await database.enqueue(insert_comment(100 + number, "pending text"))
    await database.enqueue(set_text(100, "changed in the same batch"))
    await database.enqueue(delete_comment(101))
    await database.write(delete_comment(20))
    await database.flush()
    assert await matches(database, "edited") == []
    assert 101 not in await matches(database, "pending") and 100 not in await matches(database, "pending")
    assert await matches(database, "changed") == [100]
    await database.write(lambda connection: connection.execute(INTEGRITY))


def test_upgrading_a_version_1_database_indexes_what_it_left_unindexed(tmp_path: Path) -> None:
    """Version 1 indexed comments after the fact (fts_indexed); its leftovers are indexed by 0002."""
    path = tmp_path / "conversation.db"
    connection = connect_sync(path)
    try:
        apply_migrations(connection, available_migrations()[:1])
        assert current_version(connection) == 1
        connection.execute("INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
                           "VALUES (1, 1, 'https://blog.example/p', 'A post', '2026', '2026')")
        insert = ("INSERT INTO comments (message_id, post_id, author_name, content, clean_content, created_at, "
                  "fts_indexed) VALUES (?, 1, 'alice', ?, ?, '2026', ?)")
        connection.execute(insert, (1, "alpha indexed", "alpha indexed", 1))
        connection.execute("INSERT INTO comments_fts (rowid, clean_content) VALUES (1, 'alpha indexed')")
        connection.execute(insert, (2, "alpha pending", "alpha pending", 0))
        apply_migrations(connection)
        assert current_version(connection) == latest_version()
        columns = {row[1] for row in connection.execute("PRAGMA table_info(comments)")}
        assert "fts_indexed" not in columns

        def found(query: str) -> list[int]:
            return [row[0] for row in connection.execute(
                "SELECT rowid FROM comments_fts WHERE comments_fts MATCH ? ORDER BY rowid", (query,))]

        assert found("alpha") == [1, 2] and found("pending") == [2]
        connection.execute("UPDATE comments SET clean_content = 'renamed' WHERE message_id = 2")
        connection.execute("DELETE FROM comments WHERE message_id = 1")
        connection.execute("INSERT INTO comments (message_id, post_id, author_name, content, clean_content, "
                           "created_at) VALUES (3, 1, 'bob', 'new words', 'new words', '2026')")
        assert found("alpha") == [] and found("renamed") == [2] and found("new") == [3]
        connection.execute(INTEGRITY)
    finally:
        connection.close()
