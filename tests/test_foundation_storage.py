"""Storage: migrations, the batching writer, and online backups."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bot.storage import Database, MigrationError
from bot.storage.copies import backup_database
from bot.storage.db import SqliteWriter, WriteQueue, WriteQueueClosed, connect_sync, to_db_time, utcnow
from bot.storage.migrate import (
    Migration,
    apply_migrations,
    available_migrations,
    check_sqlite,
    current_version,
    latest_version,
)

TABLES = {"meta", "guild_settings", "feeds", "posts", "feed_items", "announcements", "threads", "comments",
          "comment_revisions", "attachments", "reactions", "user_privacy", "posts_fts", "comments_fts"}


def table_names(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()


def test_migrations_are_numbered_from_one() -> None:
    migrations = available_migrations()
    assert [migration.version for migration in migrations] == list(range(1, len(migrations) + 1))
    assert latest_version() == len(migrations)


async def test_migrate_from_empty_file_and_rerun_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "conversation.db"
    database = await Database.open(path)
    await database.close()
    assert TABLES <= table_names(path)
    connection = connect_sync(path)
    try:
        assert current_version(connection) == latest_version()
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert apply_migrations(connection) == []
    finally:
        connection.close()
    database = await Database.open(path)  # opening again applies nothing and fails nothing
    await database.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {latest_version() + 1}")
    connection.close()
    with pytest.raises(MigrationError, match="upgrade conversation-engine"):
        await Database.open(path)


def test_failed_migration_leaves_previous_version_intact(tmp_path: Path) -> None:
    connection = connect_sync(tmp_path / "conversation.db")
    good = Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    broken = Migration(2, "0002_b.sql", "CREATE TABLE b (x INTEGER); INSERT INTO a VALUES (1); SELECT * FROM nope;")
    with pytest.raises(MigrationError, match="0002_b.sql"):
        apply_migrations(connection, [good, broken])
    assert current_version(connection) == 1
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "a" in names and "b" not in names
    assert connection.execute("SELECT count(*) FROM a").fetchone()[0] == 0
    connection.close()


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    connection = connect_sync(tmp_path / "conversation.db")
    apply_migrations(connection)
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO comments (message_id, post_id, author_name, created_at) VALUES (1, 999, 'x', '2026')")
    connection.close()


def insert_meta(key: str, value: str):  # type: ignore[no-untyped-def]
    def op(connection: sqlite3.Connection) -> int:
        return connection.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value)).lastrowid or 0

    return op


async def test_write_returns_results_and_a_failing_op_fails_alone(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "conversation.db")
    try:
        results = await asyncio.gather(
            database.write(insert_meta("a", "1")),
            database.write(insert_meta("a", "duplicate")),
            database.write(insert_meta("b", "2")),
            return_exceptions=True,
        )
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
        rows = await database.fetch_all("SELECT key, value FROM meta ORDER BY key")
        assert [tuple(row) for row in rows] == [("a", "1"), ("b", "2")]
    finally:
        await database.close()


async def test_enqueued_writes_are_batched_and_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"
    database = await Database.open(path)
    for number in range(1_000):
        await database.enqueue(insert_meta(f"k{number}", str(number)))
    await database.close()  # nothing lost: close commits what is queued
    assert database.writes.ops_committed >= 1_000
    assert database.writes.batches_committed < 1_000 / 10  # batched, not a commit per write
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT count(*) FROM meta").fetchone()[0] == 1_000
    connection.close()


@pytest.mark.parametrize("thread_clock", [True, False], ids=["thread-cpu-clock", "no-thread-cpu-clock"])
async def test_the_writer_works_with_and_without_a_readable_thread_clock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_clock: bool) -> None:
    # Without time.pthread_getcpuclockid (Windows, macOS) the loop hands the GIL over by the
    # writer's progress alone; with it, by the writer thread's CPU clock.
    if not thread_clock:
        monkeypatch.delattr(time, "pthread_getcpuclockid", raising=False)
    elif not hasattr(time, "pthread_getcpuclockid"):
        pytest.skip("this platform has no thread CPU clocks")
    database = await Database.open(tmp_path / "conversation.db")
    try:
        for number in range(300):
            await database.enqueue(insert_meta(f"k{number}", "x"))
        await database.flush()
        assert database.writes.gil.reads_the_writer_clock is thread_clock
        assert await database.fetch_value("SELECT count(*) FROM meta WHERE key LIKE 'k%'") == 300
    finally:
        await database.close()
    assert not database.writes.gil.reads_the_writer_clock  # never read once the thread is done


async def test_the_loop_stops_sleeping_for_a_writer_blocked_on_a_lock(tmp_path: Path) -> None:
    # The loop hands the GIL over to a writer thread that waits for it; a writer blocked on a lock
    # held by another process does not need it, and sleeping for it would slow the loop down.
    if not hasattr(time, "pthread_getcpuclockid"):
        pytest.skip("this platform has no thread CPU clocks")
    path = tmp_path / "conversation.db"
    database = await Database.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        before = database.writes.gil.sleeps
        blocked = asyncio.ensure_future(database.write(insert_meta("blocked", "x")))
        await asyncio.sleep(0.5)  # the writer waits in SQLite's busy handler meanwhile
        assert not blocked.done()
        slept = database.writes.gil.sleeps - before
        other.execute("COMMIT")
        assert await asyncio.wait_for(blocked, 5) >= 1
        # Two tries each time SQLite's busy handler wakes up (about 14 times in 0.5 s), else one
        # every 4 ms: some 150; sleeping at every look was 377 sleeps here.
        assert slept < 250, slept
    finally:
        other.close()
        await database.close()


async def test_a_side_thread_checkpoints_the_wal_and_stops_on_close(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"
    database = await Database.open(path)
    try:
        size_before = path.stat().st_size
        for number in range(400):  # some 2 MB: 500 pages, far below the writer's own threshold
            await database.enqueue(insert_meta(f"bulk{number}", "x" * 5000))
        await database.flush()
        # Only a checkpoint moves the pages from the -wal file into the database file.
        for _ in range(100):
            if path.stat().st_size > size_before + 1_000_000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > size_before + 1_000_000
    finally:
        await database.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "sqlite-checkpointer"]


def test_a_failing_checkpoint_is_logged_once_not_four_times_a_second(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bot.storage.checkpoint import Checkpointer

    garbage = tmp_path / "not-a-database.db"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    checkpointer = Checkpointer(garbage, every=0.01)
    checkpointer.start()
    time.sleep(0.3)  # some 30 tries
    checkpointer.stop()
    failures = [record for record in caplog.records if "WAL checkpoints fail" in record.getMessage()]
    assert len(failures) == 1


async def test_producers_block_when_the_queue_is_full(tmp_path: Path) -> None:
    connection = connect_sync(tmp_path / "conversation.db")
    apply_migrations(connection)
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    def slow(conn: sqlite3.Connection) -> None:
        loop.call_soon_threadsafe(gate.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)

    queue = WriteQueue(SqliteWriter(connection, tmp_path / "conversation.db"), max_pending=5, batch_size=1)
    await queue.enqueue(slow)
    await gate.wait()  # the writer is busy with the slow op
    for number in range(4):
        await queue.enqueue(insert_meta(f"k{number}", "x"))
    blocked = asyncio.ensure_future(queue.enqueue(insert_meta("overflow", "x")))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "a full queue must make the producer wait"
    assert queue.waiting == 5
    release.set()
    await asyncio.wait_for(blocked, 5)
    await queue.close()
    assert connection.execute("SELECT count(*) FROM meta").fetchone()[0] == 5
    connection.close()


async def test_send_hands_back_the_commit_and_the_writer_goes_quiet_when_idle(tmp_path: Path) -> None:
    connection = connect_sync(tmp_path / "conversation.db")
    apply_migrations(connection)
    queue = WriteQueue(SqliteWriter(connection, tmp_path / "conversation.db"))
    committed = await queue.send(insert_meta("sent", "x"))
    assert await asyncio.wait_for(committed, 5) >= 1
    failed = await queue.send(insert_meta("sent", "again"))  # the key exists: this op fails alone
    with pytest.raises(sqlite3.IntegrityError):
        await asyncio.wait_for(failed, 5)
    # While writes are outstanding the loop hands the GIL over every millisecond; once they are
    # settled that timer must stop, or an idle bot would wake a thousand times a second.
    await asyncio.sleep(0.02)
    assert queue._hand_over is None
    await queue.close()
    with pytest.raises(WriteQueueClosed):
        await queue.send(insert_meta("late", "x"))
    assert connection.execute("SELECT value FROM meta WHERE key = 'sent'").fetchone()[0] == "x"
    connection.close()


def test_writes_queued_when_the_loop_dies_without_close_are_still_written(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"

    async def abandon() -> Database:
        database = await Database.open(path)
        for number in range(100):
            await database.enqueue(insert_meta(f"k{number}", "x"))
        return database  # never closed: the loop ends under it

    database = asyncio.run(abandon())
    # The writer thread notices the closed loop, writes what was queued and ends (else the
    # process could not exit).
    for thread in threading.enumerate():
        if thread.name == "sqlite-writer":
            thread.join(10)
            assert not thread.is_alive(), "the writer thread did not end after its event loop was closed"
    asyncio.run(database.reader.close())
    database._writer.close()
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 100
    connection.close()


async def test_backup_while_writes_continue(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"
    database = await Database.open(path)
    stop = asyncio.Event()
    progress = asyncio.Condition()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            # Ten at a time: they share a batch (one commit), so the test does not wait on the
            # batching window for every single row.
            await asyncio.gather(*(database.write(insert_meta(f"k{written + offset}", to_db_time(utcnow())))
                                   for offset in range(10)))
            async with progress:
                written += 10
                progress.notify_all()

    async def wait_for_written(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: written >= count)

    task = asyncio.create_task(writer())
    await wait_for_written(200)
    copy = tmp_path / "backups" / "copy.db"
    await database.backup(copy)
    written_after_backup = written
    await wait_for_written(written_after_backup + 50)  # writes went on during and after the backup
    stop.set()
    await task
    await database.close()
    backup = sqlite3.connect(copy)
    try:
        assert backup.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = backup.execute("SELECT count(*) FROM meta").fetchone()[0]
        assert 200 <= count <= written_after_backup
        keys = {row[0] for row in backup.execute("SELECT key FROM meta")}
        assert keys == {f"k{number}" for number in range(count)}  # a consistent prefix, no holes
    finally:
        backup.close()


def test_backup_cli(tmp_path: Path) -> None:
    source = tmp_path / "conversation.db"
    connection = connect_sync(source)
    apply_migrations(connection)
    connection.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
    connection.close()
    backup_database(source, tmp_path / "copy.db")
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT value FROM meta").fetchone()[0] == "v"
    copy.close()


def test_an_sqlite_library_too_old_is_refused_in_plain_words() -> None:
    connection = sqlite3.connect(":memory:")
    try:
        check_sqlite(connection)  # the one this Python has passes
        with pytest.raises(MigrationError) as refused:
            check_sqlite(connection, version=(3, 31, 1))
        assert "version 3.35.0 or newer (this one is 3.31.1)" in str(refused.value)
        assert "SQLite 3.35+ with JSON and FTS5" in str(refused.value)
    finally:
        connection.close()
