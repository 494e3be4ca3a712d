"""Benchmark: one FeedScheduler cycle over 1,000 locally served feeds.

A separate process serves /feed/<n> (so its CPU and event loop are not counted). Three cycles run
against a temporary database:

1. first fetch: every feed is new (200, 10 items each, backfill 1);
2. mixed: half the feeds answer 304 to their ETag, half have changed (a new item each);
3. unchanged: every feed answers 304.

The stalls left in cycle 2 come from Python's cyclic garbage collector: a full (generation 2)
collection walks every object of the process (about 47,000 here; far more in the bot, with
discord.py's caches) and took 36 ms on the 2-CPU machine it was measured on. ``--gc-freeze`` shows
the effect of ``gc.freeze()`` after start-up.

For each cycle it prints wall time, CPU seconds of this process and of the feed-parsing worker
processes, and the longest event-loop stall
seen by a 1 ms ticker. Targets: no stall over 25 ms; 1,000 unchanged feeds under 10 s.

    /work/venv/bin/python bench/feeds.py [--feeds 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web

from bot.config import Settings
from bot.feeds.fetch import FetchTimeouts, new_feed_session
from bot.feeds.parse import shutdown_parse_workers
from bot.feeds.scheduler import FeedScheduler
from bot.storage import feeds as feed_store
from bot.storage.db import Database

PARAGRAPH = (
    "<p>A lot can happen in a conversation. <a href=\"/about/\">Read more</a> about <em>why</em> the "
    "comments live in Discord, with <strong>threads</strong>, images <img src=\"/img/{n}.jpg\" alt=\"x\"> "
    "and links to <a href=\"https://example.com/{n}\">elsewhere</a>.</p>"
)


def feed_document(feed: int, version: int) -> bytes:
    """A WordPress-like 10-item RSS feed; ``version`` adds one newer item per step."""
    base = datetime(2026, 11, 20, tzinfo=UTC)
    items = []
    for number in range(version + 10, version, -1):
        when = format_datetime(base + timedelta(hours=number), usegmt=True)
        body = "".join(PARAGRAPH.format(n=number * 10 + k) for k in range(4))
        items.append(
            f"<item><title>Post {number} of feed {feed}</title>"
            f"<link>https://blog{feed}.example.com/{number}/?utm_source=rss</link>"
            f"<guid isPermaLink=\"false\">https://blog{feed}.example.com/?p={number}</guid>"
            f"<pubDate>{when}</pubDate><dc:creator><![CDATA[Author]]></dc:creator>"
            f"<category><![CDATA[Notes]]></category>"
            f"<description><![CDATA[{body}]]></description>"
            f"<content:encoded><![CDATA[{body * 3}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Blog {feed}</title><link>https://blog{feed}.example.com/</link>"
        f"<description>Blog</description>{''.join(items)}</channel></rss>"
    ).encode()


def serve(port_queue: multiprocessing.Queue[int]) -> None:
    """The feed server process. Mode "half": odd feeds change on every request."""
    state = {"mode": "first", "versions": {}}
    # Each document is generated once: the server shares the machine's CPUs with what is measured.
    documents: dict[tuple[int, int], bytes] = {}

    async def control(request: web.Request) -> web.Response:
        state["mode"] = request.query["mode"]
        return web.Response(text="ok")

    async def feed(request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        versions: dict[int, int] = state["versions"]  # type: ignore[assignment]
        if state["mode"] == "half" and number % 2 == 1:
            versions[number] = versions.get(number, 0) + 1
        version = versions.get(number, 0)
        etag = f'"{number}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        if (number, version) not in documents:
            documents[(number, version)] = feed_document(number, version)
        return web.Response(body=documents[(number, version)],
                            headers={"ETag": etag, "Content-Type": "application/rss+xml; charset=UTF-8"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/control", control)
        app.router.add_get("/feed/{n}", feed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def workers_cpu_seconds(server: multiprocessing.Process) -> float:
    """User + system CPU of the feed-parsing worker processes (Linux /proc): this process's
    children other than the feed ``server``."""
    total = 0
    for child in multiprocessing.active_children():
        pid = child.pid
        if pid is None or pid == server.pid:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class StallMeter:
    """A 1 ms ticker; ``worst`` is the longest extra delay between ticks (the loop was busy)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> StallMeter:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def run(feeds: int, concurrency: int, freeze: bool = False) -> None:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    port = queue.get(timeout=20)
    clock_now = [datetime(2026, 11, 20, 12, tzinfo=UTC)]
    with tempfile.TemporaryDirectory() as folder:
        database = await Database.open(Path(folder) / "bench.db")
        session = new_feed_session(timeouts=FetchTimeouts(connect=5, total=30), limit=concurrency * 2)
        settings = Settings(discord_token="t" * 30, poll_interval_seconds=600, feed_concurrency=concurrency,
                            allow_private_feeds=True)
        scheduler = FeedScheduler(database, session, settings, clock=lambda: clock_now[0])
        for number in range(feeds):
            await feed_store.register_feed(database, guild_id=1, url=f"http://127.0.0.1:{port}/feed/{number}",
                                           channel_id=2, now=clock_now[0])
        if freeze:
            gc.collect()
            gc.freeze()
        print(f"{feeds} feeds, concurrency {concurrency}, CPU count {os.cpu_count()}, "
              f"gc.freeze {'on' if freeze else 'off'} ({gc.get_freeze_count()} objects frozen)")
        for mode, label in (("first", "first fetch (all new)"), ("half", "half 304 / half changed"),
                            ("unchanged", "all unchanged (304)")):
            async with session.get(f"http://127.0.0.1:{port}/control", params={"mode": mode}) as response:
                await response.read()
            clock_now[0] += timedelta(days=1)  # everything is due again
            cpu = time.process_time()
            worker_cpu = workers_cpu_seconds(server)
            wall = time.perf_counter()
            with StallMeter() as meter:
                report = await scheduler.run_due()
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            worker_cpu = workers_cpu_seconds(server) - worker_cpu
            statuses: dict[str, int] = {}
            for outcome in report.outcomes:
                statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            print(f"{label:28s} wall {wall:6.2f} s  cpu {cpu:6.2f} s (+ parse workers {worker_cpu:6.2f} s)  "
                  f"longest stall {meter.worst * 1000:6.1f} ms  "
                  f"polled {report.polled}  {statuses}  new posts {report.new_posts}  queued {report.queued}")
        posts = await database.fetch_value("SELECT COUNT(*) FROM posts")
        announcements = await database.fetch_value("SELECT COUNT(*) FROM announcements WHERE state = 'queued'")
        print(f"posts stored {posts}, queued announcements {announcements}")
        await session.close()
        await database.close()
    shutdown_parse_workers()
    server.terminate()
    server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after start-up, so full collections skip the start-up objects")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for this process (seconds; Python's default is 0.005)")
    arguments = parser.parse_args()
    if arguments.switch_interval is not None:
        sys.setswitchinterval(arguments.switch_interval)
    print(f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
    asyncio.run(run(arguments.feeds, arguments.concurrency, arguments.gc_freeze))


if __name__ == "__main__":
    main()
