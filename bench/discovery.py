"""Announce on discovery: the time from ``/feed poll`` to the post's announcement and its thread.

Our ConversationBot against the Discord emulator (tests/fakediscord) with the announcement interval
left at an hour, so only the poll's wake can announce. Each round: the local feed server gets one
new item, ``/feed poll`` is invoked, and the clock runs until the announcement message and its
thread exist in the emulator. Prints the poll's answer time and the time to the thread.

    .venv/bin/python bench/discovery.py --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.announcements_support import add_feed, first_cycle
from tests.conftest import bot_settings, running_bot
from tests.fakediscord.harness import start_emulator
from tests.feeds_support import FeedServer, numbered_items, rss_document


async def main(rounds: int) -> None:
    emu, world = await start_emulator()
    server = await FeedServer().start()
    served = server.serve("/feed.xml", rss_document([]))
    answered: list[float] = []
    threaded: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = bot_settings(emu, Path(folder), allow_private_feeds=True, announcements_per_cycle=50)
            async with running_bot(emu, settings) as bot:
                await first_cycle(bot)
                feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                         url=server.url("/feed.xml"))
                for n in range(1, rounds + 1):
                    served.body = rss_document(numbered_items(n, newest=datetime.now(UTC) - timedelta(seconds=1),
                                                              spacing=timedelta(seconds=1)))
                    started = time.perf_counter()
                    handle = emu.invoke("feed poll", world.owner, world.announcements, {"feed": str(feed_id)})
                    await handle.answer_text(timeout=30)
                    answered.append(time.perf_counter() - started)
                    await emu.wait_until(lambda n=n: len(emu.threads_in(world.announcements)) == n, timeout=30)
                    threaded.append(time.perf_counter() - started)
    finally:
        await server.close()
        await emu.stop()
    for name, values in (("/feed poll answered", answered), ("announced with its thread", threaded)):
        ordered = sorted(values)
        print(f"{name}: median {statistics.median(ordered) * 1000:.0f} ms, "
              f"p90 {ordered[int(len(ordered) * 0.9) - 1] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms "
              f"({len(ordered)} rounds)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
