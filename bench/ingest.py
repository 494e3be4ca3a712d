"""Ingest benchmark: MESSAGE_CREATE payloads through discord.py's own receive path.

Each event goes through ``ConnectionState.parsers['MESSAGE_CREATE']`` (what the gateway calls for
every frame: Message object, message cache, dispatch to listener tasks), once with a no-op
``on_message`` listener and once with the real Discussions cog (capture rules, clean text, grouped
writes with the comments full-text index on). The two take turns in rounds, so the machine's
drifting speed weighs on both alike. The database is a SQLite file in a temporary folder, or with
``--engine postgresql`` a fresh database of a throw-away PostgreSQL server started for the run
(tests/postgres_server.py; durable like a real server, fsync and synchronous_commit on, unless
``--fast``) and opened with ``open_postgresql``, as the bot opens it; everything else is the same.
Printed:

- events/s for both pipelines (counted until the last message is committed) and their ratio;
- the max, p99 and median event -> commit latency of every stored message, under that flood;
- the memory growth (RSS and Python allocations) during a burst of 10,000 messages;
- the latency at a steady 2,000 messages/s.

Run: ``.venv/bin/python bench/ingest.py [--engine sqlite|postgresql] [--events 100000] [--rounds 5]
[--burst 10000]``. ``--without checkpoint-thread`` and ``--writer-cache-mib`` are SQLite's only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord
from discord.ext import commands

from bot.app import ConversationBot
from bot.config import Settings
from bot.storage import Database
from bot.storage import comments as comment_store
from bot.storage.db import to_db_time, utcnow
from bot.storage.postgres_engine import open_postgresql
from bot.storage.sql import Connection
from cogs.discussions import Discussions
from tests.postgres_server import postgresql_binaries, temporary_postgresql_server

GUILD_ID = 800_000_000_000_000_001
TEXT_CHANNEL_ID = 800_000_000_000_000_002
THREAD_ID = 800_000_000_000_000_003
BOT_ID = 800_000_000_000_000_004
EPOCH_MS = 1_420_070_400_000
WORDS = ("the post makes a fair point about static sites but caching is the hard part and the "
         "comments here are what make the blog worth reading again").split()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class Ids:
    def __init__(self) -> None:
        self.sequence = 0

    def next(self) -> int:
        self.sequence += 1
        millis = int(time.time() * 1000) - EPOCH_MS
        return (millis << 22) | (self.sequence % (1 << 22))


def guild_payload() -> dict[str, Any]:
    everyone = {"id": str(GUILD_ID), "name": "@everyone", "permissions": "1024", "position": 0, "color": 0,
                "hoist": False, "managed": False, "mentionable": False, "flags": 0}
    return {
        "id": str(GUILD_ID), "name": "Bench", "icon": None, "owner_id": "1", "roles": [everyone],
        "emojis": [], "stickers": [], "features": [], "member_count": 3, "verification_level": 0,
        "channels": [{"id": str(TEXT_CHANNEL_ID), "type": 0, "name": "blog", "position": 0,
                      "permission_overwrites": [], "guild_id": str(GUILD_ID)}],
        "threads": [{"id": str(THREAD_ID), "type": 11, "name": "A post", "parent_id": str(TEXT_CHANNEL_ID),
                     "guild_id": str(GUILD_ID), "owner_id": str(BOT_ID), "message_count": 0,
                     "member_count": 1, "rate_limit_per_user": 0,
                     "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                         "archive_timestamp": "2026-01-01T00:00:00+00:00", "locked": False}}],
        "members": [], "voice_states": [], "presences": [],
    }


def message_payloads(ids: Ids, count: int) -> Any:
    """MESSAGE_CREATE payloads as Discord sends them, from a handful of authors."""
    authors = [{"id": str(700_000_000_000_000_000 + n), "username": f"reader{n}", "discriminator": "0",
                "global_name": f"Reader {n}", "avatar": None} for n in range(20)]
    members = [{"roles": [], "joined_at": "2025-01-01T00:00:00+00:00", "deaf": False, "mute": False,
                "flags": 0, "nick": None} for _ in authors]
    for n in range(count):
        message_id = ids.next()
        words = WORDS[n % 7: n % 7 + 8 + n % 11]
        yield {
            "id": str(message_id), "channel_id": str(THREAD_ID), "guild_id": str(GUILD_ID),
            "author": authors[n % 20], "member": members[n % 20], "content": " ".join(words),
            "timestamp": "2026-01-01T00:00:00+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": [], "pinned": False, "type": 0, "flags": 0,
        }


class NoOp(commands.Cog):
    def __init__(self) -> None:
        self.seen = 0

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        self.seen += 1


class LatencyProbe:
    """Measures, for every stored message, the time from its gateway event to the COMMIT that made
    it durable (wraps the grouped-insert op factory and the writer's batch runner)."""

    def __init__(self, database: Database, received: dict[int, float]) -> None:
        self.latencies: list[float] = []
        self.writer_busy = 0.0
        self.groups = 0
        self.grouped_messages = 0
        executed: list[int] = []
        original_commit = database.writes._commit
        original_store_comments = comment_store.store_comments

        def commit(batch: Any) -> Any:
            executed.clear()
            began = time.perf_counter()
            outcome = original_commit(batch)
            committed = time.perf_counter()  # _commit returns after COMMIT
            self.writer_busy += committed - began
            self.latencies.extend(committed - received.pop(message_id) for message_id in executed
                                  if message_id in received)
            return outcome

        def store_comments(batch: Any) -> Callable[[Connection], int]:
            op = original_store_comments(batch)
            ids = [message.message_id for message, _ in batch]
            self.groups += 1
            self.grouped_messages += len(ids)

            def timed(connection: Connection) -> int:
                executed.extend(ids)
                return op(connection)

            return timed

        database.writes._commit = commit  # type: ignore[method-assign]
        comment_store.store_comments = store_comments


async def make_bot(database: Database) -> ConversationBot:
    # Each run makes a new bot; the last one (a cycle of some 13,000 objects with its message cache)
    # is collected here, outside the timed part, instead of in a 100 ms collection in the middle
    # of the next run that a real bot, made once, never has.
    gc.collect()
    bot = ConversationBot(Settings(discord_token="x" * 40), database, extensions=(), sync_mode="never")
    await bot._async_setup_hook()  # binds the bot to this loop, as login() does
    state = bot._connection
    state.user = discord.ClientUser(state=state, data={"id": str(BOT_ID), "username": "bench-bot",
                                                         "discriminator": "0", "avatar": None, "bot": True})
    state._add_guild_from_data(guild_payload())  # type: ignore[arg-type]
    return bot


RECEIVED: dict[int, float] = {}


async def feed(bot: ConversationBot, payloads: Any, *, stamp: bool = False) -> None:
    parse = bot._connection.parsers["MESSAGE_CREATE"]
    for payload in payloads:
        if stamp:
            RECEIVED[int(payload["id"])] = time.perf_counter()
        parse(payload)
        await asyncio.sleep(0)  # the gateway awaits the socket between frames


async def drain(bot: ConversationBot) -> None:
    # Listener tasks still running (blocked on a full write queue, say) finish first.
    while True:
        pending = [task for task in asyncio.all_tasks() if task.get_name().startswith("discord.py: on_message")]
        if not pending:
            return
        await asyncio.gather(*pending)


async def run_noop(events: int, ids: Ids, database: Database) -> float:
    bot = await make_bot(database)
    listener = NoOp()
    await bot.add_cog(listener)
    started = time.perf_counter()
    await feed(bot, message_payloads(ids, events))
    await drain(bot)
    elapsed = time.perf_counter() - started
    assert listener.seen == events, listener.seen
    await bot.remove_cog("NoOp")
    return events / elapsed


async def run_capture(events: int, ids: Ids, database: Database) -> tuple[float, Discussions]:
    bot = await make_bot(database)
    cog = Discussions(bot)
    await bot.add_cog(cog)
    before = await database.fetch_value("SELECT COUNT(*) FROM comments")
    started = time.perf_counter()
    await feed(bot, message_payloads(ids, events), stamp=True)
    await drain(bot)
    await cog.capture.flush()
    elapsed = time.perf_counter() - started
    stored = await database.fetch_value("SELECT COUNT(*) FROM comments") - before
    assert stored == events, (stored, events)
    await bot.remove_cog("Discussions")
    return events / elapsed, cog


async def run_paced(events: int, rate: float, ids: Ids, database: Database, probe: LatencyProbe) -> list[float]:
    """``events`` messages at a steady ``rate`` per second: the latency a live server sees."""
    bot = await make_bot(database)
    cog = Discussions(bot)
    await bot.add_cog(cog)
    probe.latencies.clear()
    parse = bot._connection.parsers["MESSAGE_CREATE"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n, payload in enumerate(message_payloads(ids, events)):
        delay = started + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        RECEIVED[int(payload["id"])] = time.perf_counter()
        parse(payload)
    await drain(bot)
    await cog.capture.flush()
    await bot.remove_cog("Discussions")
    return sorted(probe.latencies)


async def run_burst(events: int, ids: Ids, database: Database) -> tuple[int, int]:
    bot = await make_bot(database)
    cog = Discussions(bot)
    await bot.add_cog(cog)
    gc.collect()
    baseline = rss_bytes()
    peak = baseline
    tracemalloc.start()
    payloads = message_payloads(ids, events)
    parse = bot._connection.parsers["MESSAGE_CREATE"]
    for n, payload in enumerate(payloads):
        parse(payload)
        await asyncio.sleep(0)
        if n % 250 == 0:
            peak = max(peak, rss_bytes())
    await drain(bot)
    await cog.capture.flush()
    peak = max(peak, rss_bytes())
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await bot.remove_cog("Discussions")
    return peak - baseline, traced_peak


def switch_off(mechanisms: list[str]) -> None:
    """Turn a speed mechanism of the writer off, to measure what it is worth."""
    if "gil-hand-over" in mechanisms:
        from bot.storage import gil
        gil.GilHandOver.look = lambda self: None  # type: ignore[method-assign]
    if "checkpoint-thread" in mechanisms:
        from bot.storage import checkpoint, db
        checkpoint.Checkpointer.start = lambda self: None  # type: ignore[method-assign]
        db.WRITER_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: commits checkpoint themselves


async def measure(database: Database, arguments: argparse.Namespace) -> None:
    """The benchmark proper, on an open database of either engine."""
    now = to_db_time(utcnow())
    postgresql = database.engine == "postgresql"

    def add_thread(connection: Connection) -> None:
        connection.execute("INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
                           "VALUES (1, ?, 'https://blog.example/p', 'A post', ?, ?)", (GUILD_ID, now, now))
        connection.execute("INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, "
                           "created_at, updated_at) VALUES (?, 1, ?, ?, 'A post', ?, ?)",
                           (THREAD_ID, GUILD_ID, TEXT_CHANNEL_ID, now, now))

    await database.write(add_thread)
    if arguments.writer_cache_mib:
        await database.write(lambda connection: connection.execute(
            f"PRAGMA cache_size = -{arguments.writer_cache_mib * 1024}"))
    if arguments.no_fts:
        drop = "DROP TRIGGER comments_fts_insert" + (" ON comments" if postgresql else "")
        await database.write(lambda connection: connection.execute(drop))
    ids = Ids()
    probe = LatencyProbe(database, RECEIVED)
    # The two pipelines take turns, round after round: this 2-vCPU machine's speed drifts by a
    # third from one second to the next, and a ratio of two runs far apart measures the drift.
    per_round = arguments.events // arguments.rounds
    noop_seconds = capture_seconds = 0.0
    round_ratios: list[float] = []
    busy_before = probe.writer_busy
    for _ in range(arguments.rounds):
        noop_rate = await run_noop(per_round, ids, database)
        capture_rate, _ = await run_capture(per_round, ids, database)
        noop_seconds += per_round / noop_rate
        capture_seconds += per_round / capture_rate
        round_ratios.append(capture_rate / noop_rate)
    total_events = per_round * arguments.rounds
    noop_rate, capture_rate = total_events / noop_seconds, total_events / capture_seconds
    writer_share = (probe.writer_busy - busy_before) / capture_seconds
    latencies = sorted(probe.latencies)
    rss_growth, traced_peak = await run_burst(arguments.burst, ids, database)
    paced = await run_paced(arguments.paced_events, arguments.paced_rate, ids, database, probe)
    await database.flush()
    if postgresql:
        fts_rows = await database.fetch_value(
            "SELECT COUNT(*) FROM comments_fts WHERE document @@ to_tsquery('conversation_search', 'caching')")
    else:
        fts_rows = await database.fetch_value("SELECT COUNT(*) FROM comments_fts WHERE comments_fts MATCH 'caching'")
    writes = database.writes
    print(f"events per pipeline:            {total_events:,} in {arguments.rounds} alternating rounds"
          f"{' (full-text index OFF, for comparison)' if arguments.no_fts else ''}"
          f"{f' (writer page cache {arguments.writer_cache_mib} MiB)' if arguments.writer_cache_mib else ''}")
    print(f"no-op listener:                 {noop_rate:,.0f} events/s")
    print(f"capture + storage:              {capture_rate:,.0f} events/s")
    print(f"ratio:                          {capture_rate / noop_rate:.2f}x (rounds: median "
          f"{statistics.median(round_ratios):.2f}x, min {min(round_ratios):.2f}x, max {max(round_ratios):.2f}x)")
    print(f"event->commit latency:          max {latencies[-1] * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, "
          f"median {statistics.median(latencies) * 1000:.1f} ms over {len(latencies):,} messages")
    print(f"writer thread busy:             {writer_share:.0%} of the capture runs")
    print(f"writer transactions:            {writes.batches_committed:,} "
          f"(mean {writes.ops_committed / max(writes.batches_committed, 1):.1f} writes each); "
          f"new-message groups {probe.groups:,} (mean {probe.grouped_messages / max(probe.groups, 1):.0f} messages)")
    print(f"burst of {arguments.burst:,}: RSS growth        {rss_growth / 2**20:.1f} MiB, "
          f"Python allocations peak {traced_peak / 2**20:.1f} MiB")
    print(f"paced {arguments.paced_events:,} at {arguments.paced_rate:,.0f}/s: latency max "
          f"{paced[-1] * 1000:.1f} ms, p99 {paced[int(len(paced) * 0.99)] * 1000:.1f} ms, "
          f"median {statistics.median(paced) * 1000:.1f} ms")
    if not arguments.no_fts:
        print(f"FTS check: {fts_rows:,} stored comments match 'caching' (indexed as they were stored)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating no-op/capture rounds")
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--paced-events", type=int, default=10_000)
    parser.add_argument("--paced-rate", type=float, default=2_000.0)
    parser.add_argument("--no-fts", action="store_true",
                        help="for comparison only: drop the comments full-text trigger")
    parser.add_argument("--without", action="append", default=[], choices=["gil-hand-over", "checkpoint-thread"],
                        help="for comparison only: run without this speed mechanism of the writer "
                             "(checkpoint-thread: SQLite only)")
    parser.add_argument("--writer-cache-mib", type=int, default=None,
                        help="SQLite only: page cache of the writer connection (default: the bot's 64 MiB)")
    parser.add_argument("--fast", action="store_true",
                        help="PostgreSQL only: fsync and synchronous_commit off (as the tests run the server)")
    arguments = parser.parse_args()
    if arguments.engine == "postgresql":
        if "checkpoint-thread" in arguments.without:
            parser.error("--without checkpoint-thread: PostgreSQL has no WAL checkpoint thread (SQLite only)")
        if arguments.writer_cache_mib is not None:
            parser.error("--writer-cache-mib sets SQLite's page cache (SQLite only)")
    elif arguments.fast:
        parser.error("--fast is for --engine postgresql")
    logging.basicConfig(level=logging.ERROR)
    switch_off(arguments.without)
    print(f"engine:                         {arguments.engine}"
          f"{' (fsync off)' if arguments.fast else ' (durable: fsync on)' if arguments.engine == 'postgresql' else ''}")
    print(f"writer speed mechanisms off:    {', '.join(arguments.without) or 'none'}")
    if arguments.engine == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            database = await Database.open(Path(folder) / "bench.db")
            try:
                await measure(database, arguments)
            finally:
                await database.close()
        return
    binaries = postgresql_binaries()
    if binaries is None:
        parser.error("PostgreSQL server binaries (initdb, pg_ctl) not found")
    with temporary_postgresql_server(binaries, durable=not arguments.fast) as server:
        admin = await asyncpg.connect(server.url())
        try:
            await admin.execute('CREATE DATABASE "bench"')
        finally:
            await admin.close()
        database = await open_postgresql(server.url("bench"))
        try:
            await measure(database, arguments)
        finally:
            await database.close()


if __name__ == "__main__":
    asyncio.run(main())
