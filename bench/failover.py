"""Failover: how long the bot is without its once-per-bot work when the elected process dies.

Two real bot processes (``python -c`` running ``bot.__main__.run_bot``, as ``run`` does), one shard
each of ``SHARD_COUNT=2``, share a throw-away PostgreSQL server (tests/postgres_server.py) and the
Discord emulator (tests/fakediscord). Each round: a post is queued, the process holding the bot-wide
role is SIGKILLed, and the bench measures

- takeover: from the kill to the other process logging ``took the bot-wide role``;
- announced: from the kill to the queued post's announcement appearing in Discord.

The killed process is started again (it joins as the follower) before the next round, which kills
the other one. Election interval: the default Tuning's (5 s) unless ``--interval`` is given.

    .venv/bin/python bench/failover.py [--rounds 5] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bot.storage.db import Database
from bot.storage.postgres_engine import open_postgresql
from tests.announcements_support import announcement_messages, queue_post
from tests.conftest import TEST_TUNING, bot_settings
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import start_emulator
from tests.postgres_server import postgresql_binaries, temporary_postgresql_server
from tests.process_support import BotProcess
from tests.test_shards_discord import guild_on_shard

ELECTED = "took the bot-wide role"


async def wait(condition: object, what: str, timeout: float = 120.0) -> float:  # noqa: ASYNC109
    """Until ``condition()`` holds; the monotonic time it was first seen to."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def run(rounds: int, interval: float) -> None:
    binaries = postgresql_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found")
    tuning = replace(TEST_TUNING, election_interval_seconds=interval)
    with temporary_postgresql_server(binaries) as server, tempfile.TemporaryDirectory() as folder:
        admin = await asyncpg.connect(server.url())
        await admin.execute('CREATE DATABASE "failover"')
        await admin.close()
        url = server.url("failover")
        emu, world = await start_emulator()
        database = await open_postgresql(url)
        try:
            guild, channel = guild_on_shard(emu, world, 0)
            guild_on_shard(emu, world, 1)  # the other process's shard has a guild too
            processes = [BotProcess(bot_settings(emu, Path(folder), tuning=tuning, database_url=url, shard_count=2,
                                                 shard_ids=(shard,)), Path(folder) / f"shard{shard}.log")
                         for shard in (0, 1)]
            for process in processes:
                await process.start()
            await wait(lambda: sum(p.log().count(ELECTED) for p in processes) == 1, "the first election")
            takeovers: list[float] = []
            announced: list[float] = []
            for number in range(rounds):
                took, shown = await one_round(processes, database, emu, guild.id, channel.id, number)
                takeovers.append(took)
                announced.append(shown)
                print(f"round {number + 1}: takeover {took:.2f} s, post announced {shown:.2f} s after the kill",
                      flush=True)
            print(f"election interval {interval} s, {rounds} rounds: takeover min/median/max "
                  f"{min(takeovers):.2f}/{statistics.median(takeovers):.2f}/{max(takeovers):.2f} s; "
                  f"announced {min(announced):.2f}/{statistics.median(announced):.2f}/{max(announced):.2f} s")
            for process in processes:
                await process.stop()
        finally:
            await database.close()
            await emu.stop()


async def one_round(processes: list[BotProcess], database: Database, emu: FakeDiscord, guild_id: int,
                    channel_id: int, number: int) -> tuple[float, float]:
    """Kill the elected process: (seconds to the takeover, seconds to the queued post's announcement)."""
    leader = next(p for p in processes if p.process and p.process.returncode is None and _holds(p))
    survivor = next(p for p in processes if p is not leader)
    elected_before = survivor.log().count(ELECTED)
    await wait(lambda: "catch-up of" in survivor.log(), "the survivor ready")
    post = await queue_post(database, guild_id, channel_id, title=f"Failover round {number}")
    await leader.kill()
    killed = time.monotonic()
    took = await wait(lambda: survivor.log().count(ELECTED) > elected_before, "the takeover")
    shown = await wait(lambda: bool(announcement_messages(emu, channel_id, post.url)), "the announcement")
    leader.log_path.write_text("")  # its next life starts a fresh log (a follower until elected)
    await leader.start()
    return took - killed, shown - killed


def _holds(process: BotProcess) -> bool:
    """Whether the process's last word on the role was taking it."""
    log = process.log()
    return log.rfind(ELECTED) > log.rfind("lost the bot-wide role")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="election interval, seconds")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.rounds, arguments.interval))


if __name__ == "__main__":
    main()
