"""The write path and reads behave the same on both engines (the storage contract's foundation)."""

from __future__ import annotations

from bot.model.messages import IncomingMessage
from bot.storage.comments import set_opted_out, store_comments
from bot.storage.db import Database, to_db_time, utcnow
from bot.storage.replies import record_blog_reply
from bot.storage.sql import INTEGRITY_ERRORS, Connection, numbered_placeholders
from bot.storage.webhooks import sync_targets
from tests.conftest import BOTH_ENGINES

pytestmark = BOTH_ENGINES


def test_placeholders_are_numbered_outside_quotes() -> None:
    assert numbered_placeholders("SELECT ? , '?' , \"a?\", ?") == "SELECT $1 , '?' , \"a?\", $2"
    assert numbered_placeholders("SELECT ?2, ?1, ?12") == "SELECT $2, $1, $12"


async def test_writes_commit_in_order_and_read_back(database: Database) -> None:
    def put(key: str, value: str) -> object:
        def op(connection: Connection) -> int:
            return connection.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value)).rowcount
        return op

    for number in range(50):
        await database.enqueue(put(f"k{number % 5}", str(number)))
    assert await database.write(put("last", "x")) == 1
    rows = await database.fetch_all("SELECT key, value FROM meta WHERE key LIKE ? ORDER BY key", ("k%",))
    assert [(row["key"], row[1]) for row in rows] == [(f"k{n}", str(45 + n)) for n in range(5)]
    assert await database.fetch_value("SELECT value FROM meta WHERE key = ?", ("last",)) == "x"
    assert await database.fetch_one("SELECT value FROM meta WHERE key = ?", ("none",)) is None


async def test_a_failing_op_fails_alone(database: Database) -> None:
    def insert(key: str) -> object:
        def op(connection: Connection) -> None:
            connection.execute("INSERT INTO meta (key, value) VALUES (?, 'v')", (key,))
        return op

    futures = [await database.send(insert(key)) for key in ("a", "b", "a", "c")]
    results: list[object] = []
    for future in futures:
        try:
            results.append(await future)
        except INTEGRITY_ERRORS as error:
            results.append(type(error).__name__)
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], str)
    keys = [row[0] for row in await database.fetch_all("SELECT key FROM meta WHERE key IN ('a','b','c') ORDER BY key")]
    assert keys == ["a", "b", "c"]



async def test_a_group_of_new_comments_is_indexed_versioned_attributed_and_sent_out(database: Database) -> None:
    """One statement stores the group; what the insert triggers do (per row on SQLite, per statement
    on PostgreSQL) is the same on both engines."""
    now = utcnow()
    stamp = to_db_time(now)

    def world(connection: Connection) -> None:
        connection.execute("INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
                           "VALUES (1, 5, 'https://blog.example/a', 'A', ?, ?), "
                           "(2, 5, 'https://blog.example/b', 'B', ?, ?)", (stamp, stamp, stamp, stamp))
        connection.execute("INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, "
                           "updated_at) VALUES (101, 1, 5, 9, 'A', ?, ?), (102, 2, 5, 9, 'B', ?, ?)",
                           (stamp, stamp, stamp, stamp))

    await database.write(world)
    await database.write(sync_targets(["https://hooks.example/in"]))
    await database.write(set_opted_out(77, True, now))
    versions_before = dict(await database.fetch_all("SELECT id, version FROM posts ORDER BY id"))
    first = 1_300_000_000_000_000_000
    await record_blog_reply(database, message_id=first + 3, thread_id=101, author_id=55, author_name="reader on the blog",
                            author_avatar_url=None, reply_to=first)

    def said(offset: int, thread: int, author: int, text: str) -> tuple[IncomingMessage, str]:
        return IncomingMessage(message_id=first + offset, channel_id=thread, guild_id=5, author_id=author,
                               author_name=f"user {author}", author_avatar_url=None, author_is_bot=author == 99,
                               message_type=0, content=text), text

    written = await database.write(store_comments([
        said(0, 101, 11, "zephyr opens"), said(1, 102, 12, "zephyr answers"), said(2, 101, 77, "zephyr opted out"),
        said(3, 101, 99, "zephyr from the blog"), said(4, 101, 11, "quiet line")]))

    assert written == 4
    rows = await database.fetch_all("SELECT message_id, author_id, author_name, is_bot, reply_to FROM comments "
                                    "ORDER BY message_id")
    assert [tuple(row) for row in rows] == [
        (first, 11, "user 11", 0, None), (first + 1, 12, "user 12", 0, None),
        (first + 3, 55, "reader on the blog", 0, first), (first + 4, 11, "user 11", 0, None)]
    if database.engine == "postgresql":
        indexed = "SELECT message_id FROM comments_fts WHERE document @@ to_tsquery('conversation_search', 'zephyr')"
    else:
        indexed = "SELECT rowid FROM comments_fts WHERE comments_fts MATCH 'zephyr'"
    assert sorted(row[0] for row in await database.fetch_all(indexed)) == [first, first + 1, first + 3]
    versions_after = dict(await database.fetch_all("SELECT id, version FROM posts ORDER BY id"))
    assert all(versions_after[post] > versions_before[post] for post in (1, 2))
    events = await database.fetch_all("SELECT type, post_id, message_id FROM webhook_outbox ORDER BY id")
    assert [tuple(event) for event in events] == [
        ("comment.created", 1, first), ("comment.created", 2, first + 1), ("comment.created", 1, first + 3),
        ("comment.created", 1, first + 4)]
