"""The write path and reads behave the same on both engines (the storage contract's foundation)."""

from __future__ import annotations

from bot.storage.db import Database
from bot.storage.sql import INTEGRITY_ERRORS, Connection, numbered_placeholders
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

