"""The write path loses nothing and keeps the order: events applied as they happened, writes kept
through a database locked by another process and through a full disk, producers held back (not
failed) while the queue is full."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bot.config import Settings
from bot.storage import Database
from bot.storage import comments as store
from bot.storage.db import WriteOp
from bot.storage.postgres_engine import WRITER_APPLICATION_NAME, open_postgresql
from bot.storage.sql import Connection
from bot.web import DiscordStatus, WebServer
from tests.conftest import TEST_TUNING, bot_settings, running_bot, settled
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World


def insert_meta(key: str, value: str) -> WriteOp[int]:
    def op(connection: sqlite3.Connection) -> int:
        return connection.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value)).rowcount
    return op


async def new_post_thread(emu: FakeDiscord, world: World, database: Database, title: str) -> object:
    starter = emu.send_message(world.announcements, emu.bot, f"New post: {title}")
    thread = emu.create_thread(world.announcements, title, emu.bot, message=starter)
    await add_post_thread(database, thread.id, title=title, guild_id=world.guild.id,
                          parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    return thread


async def test_an_edit_and_a_delete_right_after_a_message_are_applied_in_order(
        emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        database = bot.database
        await settled(bot)
        # Recorded after the bot loaded its tracked threads: the first event of this thread makes the
        # capture ask the database, and the events right behind it must still come after it.
        thread = await new_post_thread(emulator, world, database, "Ordered")
        cog = bot.get_cog("Discussions")
        assert cog is not None
        for round_number in range(6):
            gap = 0.001 if round_number % 2 else 0.0  # back to back: the gateway frames arrive together
            kept = emulator.send_message(thread, world.alice, f"first words {round_number}")
            await asyncio.sleep(gap)
            emulator.edit_message(kept, f"second thoughts {round_number}")
            gone = emulator.send_message(thread, world.bob, f"oops {round_number}")
            await asyncio.sleep(gap)
            emulator.delete_message(gone)
            edited = f"second thoughts {round_number}"
            await eventually(lambda kept=kept, edited=edited: _content_is(database, kept.id, edited),
                             what="the edit")
            await eventually(lambda gone=gone: _is_tombstone(database, gone.id), what="the tombstone")
            revisions = await store.comment_revisions(database, kept.id)
            assert [text for text, _ in revisions] == [f"first words {round_number}"]
        await cog.capture.flush()  # type: ignore[attr-defined]
        live = [c for c in await store.thread_comments(database, thread.id) if c.deleted_at is None]
        assert [c.content for c in live] == [f"second thoughts {n}" for n in range(6)]


async def _content_is(database: Database, message_id: int, content: str) -> bool:
    stored = await store.get_comment(database, message_id)
    return stored is not None and stored.content == content


async def _is_tombstone(database: Database, message_id: int) -> bool:
    stored = await store.get_comment(database, message_id)
    return stored is not None and stored.deleted_at is not None and stored.content == ""


LOCK_HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("INSERT INTO meta (key, value) VALUES ('other process', 'was here')")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.execute("COMMIT")
    print("released", flush=True)
""")


@contextlib.contextmanager
def another_process_holding_the_lock(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


async def test_writes_wait_for_a_lock_held_by_another_process_and_all_land(
        emulator: FakeDiscord, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # A small queue, so the 220 writes also make the producers wait for room.
    settings = bot_settings(emulator, tmp_path, tuning=replace(TEST_TUNING, write_queue_limit=50))
    async with running_bot(emulator, settings) as bot:
        database = bot.database
        await settled(bot)
        thread = await new_post_thread(emulator, world, database, "Locked out")
        sessions = (emulator.gateway.identify_count, emulator.gateway.resume_count)
        with another_process_holding_the_lock(database.path, 20.0) as holder:
            sent = [emulator.send_message(thread, world.alice if n % 2 else world.bob, f"message {n}")
                    for n in range(200)]
            for n in range(10):
                emulator.edit_message(sent[n], f"message {n}, edited")
            for n in range(10, 20):
                emulator.delete_message(sent[n])
            await eventually(lambda: _async(database.problem is not None), what="the stall to be reported",
                             timeout=15)
            problem = database.problem
            assert problem is not None and problem.startswith("database is locked by another process")
            assert "writes waiting" in problem
            assert holder.poll() is None, "the lock was held all along"
            assert await store.get_comment(database, sent[-1].id) is None  # nothing got through
            await asyncio.to_thread(holder.wait, 30)
        await eventually(lambda: _async(database.problem is None), what="writes to resume", timeout=15)
        cog = bot.get_cog("Discussions")
        assert cog is not None
        await cog.capture.flush()  # type: ignore[attr-defined]
        # The gateway stayed connected all along: no new session was opened.
        assert (emulator.gateway.identify_count, emulator.gateway.resume_count) == sessions
        stored = {c.message_id: c for c in await store.thread_comments(database, thread.id)}
        assert set(stored) == {m.id for m in sent}
        for n, message in enumerate(sent):
            comment = stored[message.id]
            if n < 10:
                assert comment.content == f"message {n}, edited"
                assert [text for text, _ in await store.comment_revisions(database, message.id)] == [f"message {n}"]
            elif n < 20:
                assert comment.deleted_at is not None and comment.content == ""
            else:
                assert comment.content == f"message {n}" and comment.deleted_at is None
        assert await database.fetch_value("SELECT value FROM meta WHERE key = 'other process'") == "was here"
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.storage.db"]
    assert sum(line.startswith("database is locked by another process") for line in lines) == 1, lines
    assert any(line.startswith("database writes resumed after") for line in lines), lines
    assert not any("no such savepoint" in r.getMessage() or "no such savepoint" in (r.exc_text or "")
                   for r in caplog.records)


async def _async(value: object) -> object:
    return value


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs mounted for the test (root only); skips where the machine does not allow it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small filesystem needs root on Linux (mount -t tmpfs)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem with one file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):  # the last bytes in ever smaller pieces
            with contextlib.suppress(OSError):
                while out.write(b"\0" * size):
                    pass
    return filler


async def test_a_full_disk_holds_writes_back_until_space_returns_and_loses_none(
        small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    database = await Database.open(small_disk / "conversation.db", max_pending=200)
    try:
        await database.write(insert_meta("before", "the disk filled up"))
        filler = fill(small_disk)
        producer = asyncio.ensure_future(asyncio.gather(*(
            database.enqueue(insert_meta(f"k{number}", "x" * 2000)) for number in range(1_000))))
        await eventually(lambda: _async(database.problem is not None), what="the full disk to be reported",
                         timeout=15)
        problem = database.problem
        assert problem is not None and problem.startswith("disk full:") and "free space" in problem
        await asyncio.sleep(1.0)  # a few retries while it stays full
        assert not producer.done(), "with the queue full the producers wait, they are not failed"
        filler.unlink()
        await asyncio.wait_for(producer, 30)
        await database.flush()
        assert database.problem is None
        assert await database.fetch_value("SELECT count(*) FROM meta WHERE key LIKE 'k%'") == 1_000
        assert await database.fetch_value("SELECT value FROM meta WHERE key = 'before'") == "the disk filled up"
    finally:
        await database.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.storage.db"]
    assert sum(line.startswith("disk full:") for line in lines) == 1, lines
    assert any(line.startswith("database writes resumed after") for line in lines), lines
    assert not any("no such savepoint" in r.getMessage() or "no such savepoint" in (r.exc_text or "")
                   for r in caplog.records)
    check = sqlite3.connect(small_disk / "conversation.db")
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()


async def test_healthz_says_why_writes_are_held_back_and_recovers(database: Database) -> None:
    server = WebServer(database, Settings(discord_token="", web_port=1, web_host="127.0.0.1"),
                       lambda: DiscordStatus(connected=True, latency_ms=5.0), port=0)
    await server.start()
    try:
        with another_process_holding_the_lock(database.path, 8.0) as holder:
            blocked = asyncio.ensure_future(database.write(insert_meta("waits", "for the lock")))
            await eventually(lambda: _async(database.stall is not None), what="the stall", timeout=15)
            status, document = await health(server)
            assert status == 503 and document["status"] == "down"
            assert document["problems"] == ["database writes held back (locked by another process); 1 waiting"]
            assert str(database.path) not in json.dumps(document)  # no paths or error text on a public page
            await asyncio.to_thread(holder.wait, 30)
            assert await asyncio.wait_for(blocked, 15) == 1
        status, document = await health(server)
        assert status == 200 and document["status"] == "ok" and document["problems"] == []
    finally:
        await server.stop()


async def health(server: WebServer) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
            return response.status, await response.json()


async def test_a_lost_postgresql_connection_loses_no_write(postgresql_url: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The server ends the writer's connection (a restart, a failover, an administrator) while writes
    flow: the batch is kept, the writer reconnects, and every write is committed once, in order."""
    database = await open_postgresql(postgresql_url)
    admin = await asyncpg.connect(postgresql_url)
    try:
        await database.write(_put("first", "0"))
        ended = 0
        for start in (0, 100, 200):
            for number in range(start, start + 100):
                await database.enqueue(_append(number))
            if start != 100:  # ended while these writes are on their way (the writer is connected by now)
                ended += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                    WRITER_APPLICATION_NAME)
            else:
                await database.flush()  # reconnected
        await database.flush()
        assert ended == 2
        value = await database.fetch_value("SELECT value FROM meta WHERE key = 'sequence'")
        assert value == ",".join(str(number) for number in range(300))
        assert "cannot be reached" in caplog.text and "database writes resumed" in caplog.text
        assert database.problem is None
    finally:
        await admin.close()
        await database.close()


def _put(key: str, value: str) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        connection.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    return op


def _append(number: int) -> WriteOp[None]:
    """Appends to one row, so the final value shows every write applied once and in order."""
    def op(connection: Connection) -> None:
        connection.execute(
            "INSERT INTO meta (key, value) VALUES ('sequence', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = meta.value || ',' || excluded.value", (str(number),))
    return op
