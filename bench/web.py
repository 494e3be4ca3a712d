"""The web server under load: 200 concurrent clients on one discussion of 3,000 comments.

Usage: python bench/web.py [--comments 3000] [--clients 200] [--seconds 5]

The bot's web server (bot.web.WebServer, its real socket on 127.0.0.1) runs in this process against
a temporary database holding one post with ``--comments`` comments (a third of them replies, some
with reactions and attachments). The clients run in a second process (so their CPU does not sit
on the server's event loop) and go through these phases, each ``--seconds`` long:

- 304 first bursts: all clients at once, each on a new connection, first as lean clients (raw
  streams: the server's share), then through aiohttp (reported on their own);
- 304 bursts: all clients send GET /api/v1/discussion with the ETag (If-None-Match) at once, wait for
  every answer, pause 0.1 s, again;
- 200 bursts: the same without the ETag (the first page: up to 200 comments);
- 304 closed loop: every client repeats its 304 request as fast as it can (saturation: latency here
  is the queue, clients / throughput);
- the blog side: for each of /p/1 (JSON-LD), the HTML fragment, both Atom feeds, the sitemap and
  counts with reactions, the cold first answer, then 200-bursts for half of ``--seconds``;
- slow:  ``--clients`` raw connections each ask for the discussion and never read the answer.

Throughout, a third process asks for /healthz every 20 ms (its own process: a prober on the
clients' event loop measured that busy loop too, not only the server). Printed: the first (cold)
request, per phase the requests served and p50/p99/max latency, /healthz p50/p99/max of the probes
sent during the phase, the longest stall of the server's event loop (a 5 ms ticker), and the server's
RSS before and after the slow readers.

``--without first-page`` serves the default page like any other page (joined per request, in a
thread when big) instead of the bytes joined once per version; ``--without admission`` lets every
request into its handler at once (no ``max_in_service``); ``--without shared-lookups`` makes every
request look its post up itself instead of sharing a concurrent lookup of the same URL. Production has no such switch: the bench patches the mechanism out.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings
from bot.storage.db import Database
from bot.web import DiscordStatus, WebServer
from bot.web.server import ServerLimits

POST_URL = "https://blog.example.com/2026/10/a-long-discussion/"
GUILD = 100000000000000001
CHANNEL = 100000000000000002
THREAD = 100000000000000003
FIRST_ID = 1_300_000_000_000_000_000
WORDS = ("discussion", "thanks", "**great**", "point", "`code`", "I think", "> quoted", "agree", "https://example.com/x",
         "||spoiler||", "because", "the", "post", "says", "not", "quite", "<@1300000000000000000>")


BLOG_SIDE_ENDPOINTS = (
    ("/p/1 page with JSON-LD", "/p/1"),
    ("HTML fragment", f"/api/v1/discussion?url={POST_URL}&format=html"),
    ("post Atom feed", "/feeds/p/1.atom"),
    ("site Atom feed", "/feeds/comments.atom"),
    ("sitemap", "/sitemap.xml"),
    ("counts + reactions", f"/api/v1/counts?url={POST_URL}"),
)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed(path: Path, comments: int) -> None:
    connection = sqlite3.connect(path)
    now = "2026-10-01T09:00:00+00:00"
    with connection:
        connection.execute(
            "INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
            "VALUES (1, ?, ?, 'A long discussion', ?, ?)", (GUILD, POST_URL, now, now))
        connection.execute(
            "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, updated_at) "
            "VALUES (?, 1, ?, ?, 'A long discussion', ?, ?)", (THREAD, GUILD, CHANNEL, now, now))
        connection.execute("INSERT INTO channel_visibility VALUES (?, ?, 1, ?)", (CHANNEL, GUILD, now))
        rows = []
        for index in range(comments):
            message_id = FIRST_ID + index
            reply_to = FIRST_ID + (index * 7919) % index if index % 3 == 2 else None
            text = " ".join(WORDS[(index * k) % len(WORDS)] for k in range(1, 4 + index % 30))
            created = f"2026-10-{1 + index // 1440:02d}T{index // 60 % 24:02d}:{index % 60:02d}:00+00:00"
            rows.append((message_id, 1, THREAD, 1000 + index % 150, f"reader {index % 150}", text, text, created,
                         reply_to))
        connection.executemany(
            "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, clean_content, "
            "created_at, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        connection.executemany("INSERT INTO reactions VALUES (?, '👍', ?)",
                               [(FIRST_ID + i, 1 + i % 5) for i in range(0, comments, 4)])
        connection.executemany(
            "INSERT INTO attachments (message_id, attachment_id, filename, url, size, content_type) "
            "VALUES (?, ?, 'a.png', 'https://cdn.discordapp.com/attachments/1/2/a.png', 1000, 'image/png')",
            [(FIRST_ID + i, i) for i in range(0, comments, 25)])
    connection.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: list[float]) -> str:
    if not values:
        return "no requests"
    return (f"{len(values):6d} requests, p50 {statistics.median(values) * 1000:6.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:6.1f} ms, max {max(values) * 1000:6.1f} ms")


# -- the client process -----------------------------------------------------------------------


async def client_phases(port: int, clients: int, seconds: float, report: Any, blog_side: bool) -> None:
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    discussion = f"{base}/api/v1/discussion?url={POST_URL}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(discussion) as response:
            etag = response.headers["ETag"]
            await response.read()
        async def burst(headers: dict[str, str], expected: int, until: float, out: list[float]) -> None:
            while time.perf_counter() < until:
                await asyncio.gather(*(hammer(headers, expected, 0.0, out) for _ in range(clients)))
                await asyncio.sleep(0.1)

        async def once(headers: dict[str, str], expected: int, out: list[float]) -> None:
            started = time.perf_counter()
            async with session.get(discussion, headers=headers) as answer:
                await answer.read()
                assert answer.status == expected, answer.status
            out.append(time.perf_counter() - started)

        async def hammer(headers: dict[str, str], expected: int, until: float, out: list[float]) -> None:
            await once(headers, expected, out)
            while time.perf_counter() < until:
                await once(headers, expected, out)

        # 200 readers arriving at once, each on its own new connection, as lean clients: connect, send
        # the request, read the answer's head (a 304 has no body), close. aiohttp's client spends
        # about as long setting up 200 connections as the server does answering them (a bare 304
        # server: p99 52-89 ms through aiohttp, 25-37 ms through raw streams), so this is the
        # server's share of a first burst.
        request = (f"GET /api/v1/discussion?url={POST_URL} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"If-None-Match: {etag}\r\nConnection: close\r\n\r\n").encode()

        async def lean(out: list[float]) -> None:
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 304"), head[:40]
            out.append(time.perf_counter() - started)
            writer.close()

        latencies: list[float] = []
        began = time.time()
        await asyncio.gather(*(lean(latencies) for _ in range(clients)))
        report.put(("304 first burst, 200 new lean connections", latencies, began, time.time()))
        await asyncio.sleep(0.1)

        # The first burst through aiohttp opens the clients' 200 connections; the phases after it
        # reuse them.
        latencies = []
        began = time.time()
        await asyncio.gather(*(once({"If-None-Match": etag}, 304, latencies) for _ in range(clients)))
        report.put(("304 first burst, 200 new connections", latencies, began, time.time()))
        await asyncio.sleep(0.1)
        phases = (("304 bursts", {"If-None-Match": etag}, 304, True), ("200 bursts", {}, 200, True),
                  ("304 closed loop", {"If-None-Match": etag}, 304, False))
        for name, headers, expected, bursts in phases:
            latencies = []
            began = time.time()
            until = time.perf_counter() + seconds
            if bursts:
                await burst(headers, expected, until, latencies)
            else:
                await asyncio.gather(*(hammer(headers, expected, until, latencies) for _ in range(clients)))
            report.put((name, latencies, began, time.time()))

        # The blog side's other endpoints: the cold (first) answer, then 200-bursts (cached by version).
        for name, path in BLOG_SIDE_ENDPOINTS if blog_side else ():
            began = time.time()
            cold: list[float] = []
            started = time.perf_counter()
            async with session.get(f"{base}{path}") as answer:
                await answer.read()
                assert answer.status == 200, (path, answer.status)
            cold.append(time.perf_counter() - started)
            latencies = []

            async def fetch(target: str, out: list[float]) -> None:
                began = time.perf_counter()
                async with session.get(target) as answer:
                    await answer.read()
                    assert answer.status == 200, answer.status
                out.append(time.perf_counter() - began)

            until = time.perf_counter() + seconds / 2
            while time.perf_counter() < until:
                await asyncio.gather(*(fetch(f"{base}{path}", latencies) for _ in range(clients)))
                await asyncio.sleep(0.1)
            report.put((f"{name} (cold {cold[0] * 1000:.0f} ms)", latencies, began, time.time()))

        # Slow readers: ask and never read; the server's RSS is measured meanwhile.
        request = f"GET /api/v1/discussion?url={POST_URL} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        slow = []
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            slow.append(sock)
        report.put(("slow-open", [], time.time(), time.time()))
        began = time.time()
        await asyncio.sleep(seconds)
        report.put(("slow", [], began, time.time()))
        for sock in slow:
            sock.close()


def client_main(port: int, clients: int, seconds: float, report: Any, blog_side: bool) -> None:
    asyncio.run(client_phases(port, clients, seconds, report, blog_side))


async def probe(port: int, stop: Any, out: Any) -> None:
    """GET /healthz every PROBE_INTERVAL on one kept-alive connection: (wall time sent, latency, status)."""
    import aiohttp

    samples: list[tuple[float, float, int]] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            sent, started = time.time(), time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                await answer.read()
            samples.append((sent, time.perf_counter() - started, answer.status))
            await asyncio.sleep(PROBE_INTERVAL)
    out.put(samples)


def probe_main(port: int, stop: Any, out: Any) -> None:
    asyncio.run(probe(port, stop, out))


PROBE_INTERVAL = 0.02


# -- the server process -----------------------------------------------------------------------


def patch_out(mechanisms: list[str]) -> None:
    """Switch speed mechanisms off in this process (the bench's side-by-side figures)."""
    import bot.web.app as web_app

    if "shared-lookups" in mechanisms:
        from bot.web.cache import SharedCalls

        class NotShared(SharedCalls[Any, Any]):
            async def run(self, key: Any, call: Any) -> Any:
                return await call()

        web_app.SharedCalls = NotShared  # type: ignore[misc]
    if "first-page" in mechanisms:
        plain = web_app.encode_discussion

        def without_first_page(*args: Any, **kwargs: Any) -> Any:
            from dataclasses import replace
            return replace(plain(*args, **kwargs), first_bounds=(-1, -1))  # never the requested page

        web_app.encode_discussion = without_first_page  # type: ignore[assignment]


async def main(comments: int, clients: int, seconds: float, without: list[str], max_in_service: int,
               blog_side: bool) -> None:
    patch_out(without)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "web.db"
        database = await Database.open(path)
        await database.close()
        seed(path, comments)
        database = await Database.open(path)
        limits = ServerLimits(max_in_service=1_000_000 if "admission" in without else max_in_service)
        server = WebServer(database, Settings(discord_token="", web_port=1, web_host="127.0.0.1"),
                           lambda: DiscordStatus(connected=True, latency_ms=40.0), port=0, limits=limits)
        await server.start()
        gc.collect()
        gc.freeze()  # as the bot does once ready (bot/app.py)
        stalls: list[tuple[float, float]] = []

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                await asyncio.sleep(0.005)
                stalls.append((time.time(), loop.time() - started - 0.005))

        ticking = asyncio.create_task(ticker())
        rss_start = rss_mib()
        print(f"{comments} comments, {clients} clients, {seconds:g} s per phase; server RSS {rss_start:.0f} MiB"
              + (f"; without {', '.join(without)}" if without else f"; {limits.max_in_service} in service"))
        context = multiprocessing.get_context("spawn")
        report = context.Queue()
        probes = context.Queue()
        stop_probing = context.Event()
        prober = context.Process(target=probe_main, args=(server.port, stop_probing, probes))
        prober.start()
        started = time.perf_counter()
        client = context.Process(target=client_main, args=(server.port, clients, seconds, report, blog_side))
        client.start()
        loop = asyncio.get_running_loop()
        rss_before_slow = rss_after = rss_mib()
        phases: list[tuple[str, list[float], float, float]] = []
        while True:
            name, latencies, began, ended = await loop.run_in_executor(None, report.get)
            if name.startswith("304 first burst, 200 new lean"):
                print(f"client start + cold first request + lean first burst: {time.perf_counter() - started:.2f} s")
            if name == "slow-open":
                rss_before_slow = rss_mib()
                continue
            if name == "slow":
                rss_after = rss_mib()
            phases.append((name, latencies, began, ended))
            if name == "slow":
                break
        stop_probing.set()
        samples: list[tuple[float, float, int]] = await loop.run_in_executor(None, probes.get)
        await loop.run_in_executor(None, client.join)
        await loop.run_in_executor(None, prober.join)
        ticking.cancel()
        for name, latencies, began, ended in phases:
            health = [latency for sent, latency, _ in samples if began <= sent < ended]
            statuses = sorted({status for sent, _, status in samples if began <= sent < ended})
            stall = max((value for at, value in stalls if began <= at < ended), default=0.0)
            if name == "slow":
                print(f"slow readers: RSS {rss_before_slow:.0f} -> {rss_after:.0f} MiB "
                      f"(+{rss_after - rss_before_slow:.0f})")
            else:
                print(f"{name}: {summary(latencies)} ({len(latencies) / (ended - began):.0f}/s)")
            print(f"     /healthz {summary(health)} {statuses}; longest loop stall {stall * 1000:.1f} ms")
        await server.stop()
        await database.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--without", action="append", default=[], choices=("first-page", "admission", "shared-lookups"),
                        help="switch a speed mechanism off (repeatable)")
    parser.add_argument("--max-in-service", type=int, default=ServerLimits().max_in_service,
                        help="requests admitted to their handlers at once")
    parser.add_argument("--widget-only", action="store_true", help="skip the blog side's endpoints")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.comments, arguments.clients, arguments.seconds, arguments.without,
                     arguments.max_in_service, not arguments.widget_only))
