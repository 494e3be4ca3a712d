"""Start-up catch-up and reconcile at scale: 10,000 tracked threads, 200 of them active.

Our ConversationBot against the Discord emulator (tests/fakediscord, its real per-route rate-limit
buckets, discord.py's own rate limiting). The world: ``--threads`` announced posts whose threads are
tracked; all but ``--active`` of them are 60 days old and archived, their comments stored and
reconciled long ago; the ``--active`` ones are recent, with ``--messages`` replies each.

1. First start: the catch-up stores the active threads' replies; the first reconcile walks the
   threads never reconciled (the active ones) and leaves the old archived ones alone.
2. While the bot is stopped, in every active thread: a delete, an edit, a reaction, 5 new replies.
3. Second start: the catch-up applies all of it; then one explicit reconcile of every thread due
   whatever its last reconcile (``reconcile_due(everything=True)``).

Printed for each phase: wall time, Discord requests by route, 429s served, and what changed.
Run: ``.venv/bin/python bench/catchup.py [--threads 10000] [--active 200] [--messages 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.model.messages import IncomingMessage
from bot.storage import Database
from bot.storage import comments as store
from bot.storage.db import to_db_time, utcnow
from tests.conftest import bot_log, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import start_emulator
from tests.fakediscord.ratelimits import normalise_route


def requests_since(emu: FakeDiscord, start: int) -> tuple[int, dict[str, int], int]:
    routes = collections.Counter(normalise_route(r.route) for r in emu.requests_log[start:])
    limited = sum(1 for r in emu.requests_log[start:] if r.status == 429)
    return sum(routes.values()), dict(routes.most_common()), limited


def report(phase: str, seconds: float, emu: FakeDiscord, start: int) -> None:
    total, routes, limited = requests_since(emu, start)
    print(f"{phase}: {seconds:.2f} s, {total} requests ({limited} answered 429)")
    for route, count in routes.items():
        print(f"    {count:6d}  {route}")


def insert_tracked_thread(connection: sqlite3.Connection, thread: Any, starter: Any, guild_id: int, parent_id: int,
                          now: str, *, archived: bool = False, reconciled: str | None = None) -> None:
    """A post and its thread as the announcer records them."""
    post_id = connection.execute(
        "INSERT INTO posts (guild_id, canonical_url, title, published_at, first_seen_at) "
        "VALUES (?, ?, ?, ?, ?)", (guild_id, f"https://blog.example/{thread.id}", thread.name, now, now)
    ).lastrowid
    connection.execute(
        "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, starter_message_id, name, "
        "archived, created_at, updated_at, last_reconciled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (thread.id, post_id, guild_id, parent_id, starter.id, thread.name, int(archived), now, now, reconciled))


def store_old_world(old: list[tuple[Any, Any, list[Any]]], guild_id: int, parent_id: int,
                    author: Any) -> Any:
    """The rows the announcer wrote for the old posts, their comments, reconciled a day ago."""
    now = to_db_time(utcnow())
    reconciled = to_db_time(utcnow() - timedelta(days=1))

    def op(connection: sqlite3.Connection) -> None:
        for thread, starter, said in old:
            insert_tracked_thread(connection, thread, starter, guild_id, parent_id, now, archived=True,
                                  reconciled=reconciled)
            for item in said:
                message = IncomingMessage(
                    message_id=item.id, channel_id=thread.id, guild_id=guild_id, author_id=author.id,
                    author_name=author.username, author_avatar_url=None, author_is_bot=False, message_type=0,
                    content=item.content)
                store.insert_comment(connection, message, item.content)
    return op


def store_active_world(active: list[tuple[Any, Any, list[Any]]], guild_id: int, parent_id: int) -> Any:
    now = to_db_time(utcnow())

    def op(connection: sqlite3.Connection) -> None:
        for thread, starter, _ in active:
            insert_tracked_thread(connection, thread, starter, guild_id, parent_id, now)
    return op


async def main(arguments: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # the bot's INFO lines go to its log only
    emu, world = await start_emulator()
    folder = Path(tempfile.mkdtemp(prefix="catchup-bench-"))
    settings = bot_settings(emu, folder)
    began = time.perf_counter()
    old: list[tuple[Any, Any, list[Any]]] = []
    with emu.backdated(days=60):
        for n in range(arguments.threads - arguments.active):
            starter = emu.send_message(world.announcements, emu.bot, f"New post: old {n}")
            thread = emu.create_thread(world.announcements, f"Old post {n}", emu.bot, message=starter)
            said = [emu.send_message(thread, world.alice, f"old reply {n}.{k}") for k in range(2)]
            emu.archive_thread(thread)
            old.append((thread, starter, said))
    active: list[tuple[Any, Any, list[Any]]] = []
    for n in range(arguments.active):
        starter = emu.send_message(world.announcements, emu.bot, f"New post: recent {n}")
        thread = emu.create_thread(world.announcements, f"Recent post {n}", emu.bot, message=starter)
        said = [emu.send_message(thread, world.alice if k % 2 else world.bob, f"reply {n}.{k}")
                for k in range(arguments.messages)]
        active.append((thread, starter, said))
    database = await Database.open(settings.database_path)
    await database.write(store_old_world(old, world.guild.id, world.announcements.id, world.alice))
    await database.write(store_active_world(active, world.guild.id, world.announcements.id))
    await database.close()
    print(f"world: {len(old)} old archived threads ({2 * len(old)} stored comments), {len(active)} active "
          f"threads with {arguments.messages} replies each; built in {time.perf_counter() - began:.1f} s")

    # 1. First start.
    start, began = len(emu.requests_log), time.perf_counter()
    async with running_bot(emu, settings) as bot:
        await bot_log(bot).wait_for("catch-up of", timeout=1800)
        report("first start, log-in to catch-up done", time.perf_counter() - began, emu, start)
        start, began = len(emu.requests_log), time.perf_counter()
        await bot_log(bot).wait_for("reconcile of", timeout=1800)
        report("first start, then the first reconcile", time.perf_counter() - began, emu, start)
        stored = await bot.database.fetch_value("SELECT COUNT(*) FROM comments")
        print(f"    comments stored: {stored}")

    # 2. Offline changes.
    for _, _, said in active:
        emu.delete_message(said[0])
        emu.edit_message(said[1], "edited while the bot was away")
        emu.add_reaction(said[2], world.bob, "👍")
    for thread, _, _ in active:
        for k in range(5):
            emu.send_message(thread, world.alice, f"said while the bot was away {k}")

    # 3. Second start.
    start, began = len(emu.requests_log), time.perf_counter()
    async with running_bot(emu, settings) as bot:
        await bot_log(bot).wait_for("catch-up of", timeout=1800)
        report("second start, log-in to catch-up done", time.perf_counter() - began, emu, start)
        caught = [r.getMessage() for r in bot_log(bot).records if r.getMessage().startswith("caught up thread")]
        print(f"    threads changed: {len(caught)}; e.g. {caught[0] if caught else '-'}")
        deleted = await bot.database.fetch_value("SELECT COUNT(*) FROM comments WHERE deleted_at IS NOT NULL")
        reactions = await bot.database.fetch_value("SELECT COUNT(*) FROM reactions")
        print(f"    tombstones: {deleted}, reactions: {reactions}")
        await bot_log(bot).wait_for("reconcile of", timeout=1800)  # the periodic one: nothing due
        cog: Any = bot.get_cog("Discussions")
        start, began = len(emu.requests_log), time.perf_counter()
        walked = await cog.reconcile_due(everything=True)
        report(f"reconcile of every thread due ({walked} walked of {arguments.threads})",
               time.perf_counter() - began, emu, start)
    await emu.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--messages", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
