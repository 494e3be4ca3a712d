"""Search latency at 10k, 100k and 1M comments while a writer keeps inserting.

Usage: python bench/search.py [--engine sqlite|postgresql] [--sizes 10000,100000,1000000] [--queries 200]

Comments are realistic-ish text: words drawn from a Zipf distribution (s = 1.1) over a 30,000-word
vocabulary, 6-40 words each, spread over posts (one post per 200 comments). The database is built
with executemany in one transaction through the real schema (FTS triggers included). Then, while a
writer thread inserts comments in small transactions as fast as it can, the bot's own search
(bot.lookup.search.search over the read connection, as /post search runs it) is timed for:

- rare:      a word matching about 10-50 comments
- sparse:    a word matching about 0.2% of comments (too many to rank them all, too few for the
             newest comments to hold a page of them)
- middling:  a word matching about 0.5-1% of comments
- third:     the word closest to matching a third of all comments
- common:    the most common word (in most comments)
- two-common: the two most common words together
- phrase:    a two-word phrase of common words

Printed: p50/p99/max per class and size, the writer's commits per second and its worst commit
time during the searches (a search never holds a write back in WAL mode; this shows it).

With ``--engine postgresql`` the SQLite database is built the same way, copied with copy-db into a
fresh database of a throw-away PostgreSQL server (durable: fsync on; tests/postgres_server.py) and
analyzed; the bot's search then runs on it as the bot opens it (open_postgresql: the read pool),
while the writer inserts over a connection of its own, through PostgreSQL's triggers.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.lookup import search as lookup
from bot.lookup.query import build_fts_query
from bot.storage import search
from bot.storage.copydb import copy_sqlite_to_postgresql
from bot.storage.db import Database
from bot.storage.postgres import connect
from bot.storage.postgres_engine import open_postgresql
from tests.postgres_server import postgresql_binaries, temporary_postgresql_server

GUILD = 100000000000000001
VOCABULARY = 30_000
ZIPF_S = 1.1
COMMENTS_PER_POST = 200
FIRST_MESSAGE_ID = 400_000_000_000_000_000
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def make_vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < VOCABULARY:
        length = min(12, max(2, int(rng.gauss(6, 2))))
        word = "".join(rng.choice(LETTERS) for _ in range(length))
        if word not in words:
            words.add(word)
            ordered.append(word)
    return ordered


class TextMaker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = make_vocabulary(self.rng)
        weights = [1.0 / (rank ** ZIPF_S) for rank in range(1, VOCABULARY + 1)]
        self.cumulative = list(itertools.accumulate(weights))

    def fork(self) -> TextMaker:
        """Another stream of comments over the same vocabulary (a writer's new comments hold the
        same words as the stored ones, so the newest comments match the measured words too)."""
        other = TextMaker.__new__(TextMaker)
        other.rng = random.Random(self.rng.randint(0, 10**9))
        other.words, other.cumulative = self.words, self.cumulative
        return other

    def comment(self) -> str:
        count = self.rng.randint(6, 40)
        picks = self.rng.choices(self.words, cum_weights=self.cumulative, k=count)
        return " ".join(picks)


def build(path: Path, size: int, maker: TextMaker) -> None:
    connection = sqlite3.connect(str(path), isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -200000")
    connection.execute("BEGIN")
    posts = size // COMMENTS_PER_POST + 1
    connection.executemany(
        "INSERT INTO posts (id, guild_id, canonical_url, title, summary, published_at, first_seen_at) "
        "VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
        ((index + 1, GUILD, f"https://blog.example.com/{index}", maker.comment()[:80], maker.comment())
         for index in range(posts)),
    )
    connection.executemany(
        "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, updated_at) "
        "VALUES (?, ?, ?, 1, 'thread', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
        ((900_000_000_000_000_000 + index, index + 1, GUILD) for index in range(posts)),
    )

    def rows() -> object:
        for index in range(size):
            text = maker.comment()
            post = index // COMMENTS_PER_POST + 1
            yield (FIRST_MESSAGE_ID + index * 4096, post, 900_000_000_000_000_000 + post - 1,
                   index % 5000, f"user{index % 5000}", text, text)

    connection.executemany(
        "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, clean_content, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-02T00:00:00+00:00')",
        rows(),  # type: ignore[arg-type]
    )
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def pick_words(path: Path, size: int) -> dict[str, str]:
    """Choose query words by their real document frequency (fts5vocab)."""
    connection = sqlite3.connect(str(path))
    connection.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, comments_fts, row)")
    frequencies = sorted((int(doc), term) for term, doc in connection.execute("SELECT term, doc FROM vocab"))
    connection.close()
    docs = [doc for doc, _ in frequencies]

    def near(target: float) -> str:
        index = min(bisect.bisect_left(docs, target), len(docs) - 1)
        return frequencies[index][1]

    common = frequencies[-1][1]
    second = frequencies[-2][1]
    return {
        "rare": near(max(10, size * 0.00002)),
        "sparse": near(size * 0.002),
        "middling": near(size * 0.007),
        "third": near(size / 3),
        "common": common,
        "two-common": f"{common} {second}",
        "phrase": f'"{common} {second}"',
    }


class Writer(threading.Thread):
    """Inserts comments in transactions of 10 (like a busy thread) and times every commit."""

    def __init__(self, maker: TextMaker) -> None:
        super().__init__(daemon=True)
        self.posts = 0
        self.written = 0
        self.maker = maker.fork()
        self.next_id = 0
        self.stop = threading.Event()
        self.measuring = threading.Event()
        self.durations: list[float] = []
        self.rows = 0

    def run(self) -> None:
        # Continue after whatever is stored (a kept database may hold an earlier run's rows).
        newest_comment, self.posts = self.open()
        self.next_id = newest_comment + 4096
        while not self.stop.is_set():
            batch = []
            new_posts: list[int] = []
            for _ in range(10):
                text = self.maker.comment()
                if self.written % COMMENTS_PER_POST == 0:
                    self.posts += 1
                    new_posts.append(self.posts)
                self.written += 1
                post = self.posts
                batch.append((self.next_id, post, 900_000_000_000_000_000 + post - 1, 7, "writer", text, text))
                self.next_id += 4096
            started = time.perf_counter()
            self.commit(batch, new_posts)  # the writer's comments go to new posts, 200 each, like real discussions
            elapsed = time.perf_counter() - started
            if self.measuring.is_set():
                self.durations.append(elapsed)
                self.rows += len(batch)
            time.sleep(0.002)  # a busy bot, not a bulk import: leave the disk some air
        self.close()

    def open(self) -> tuple[int, int]:
        """Connect (on this thread); the newest comment's and post's ids."""
        raise NotImplementedError

    def commit(self, batch: list[tuple[Any, ...]], new_posts: list[int]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


NEW_POST = ("INSERT INTO posts (id, guild_id, canonical_url, title, summary, published_at, first_seen_at) "
            "VALUES (?, ?, ?, 'new post', '', '2026-01-03T00:00:00+00:00', '2026-01-03T00:00:00+00:00')")
NEW_THREAD = ("INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, "
              "updated_at) VALUES (?, ?, ?, 1, 't', '2026-01-03T00:00:00+00:00', '2026-01-03T00:00:00+00:00')")
NEW_COMMENT = ("INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, "
               "clean_content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-03T00:00:00+00:00')")


def numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


class SqliteWriter(Writer):
    def __init__(self, path: Path, maker: TextMaker) -> None:
        super().__init__(maker)
        self.path = path

    def open(self) -> tuple[int, int]:
        self.connection = sqlite3.connect(str(self.path), isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.connection.execute("PRAGMA busy_timeout = 5000")
        return (int(self.connection.execute("SELECT max(message_id) FROM comments").fetchone()[0]),
                int(self.connection.execute("SELECT max(id) FROM posts").fetchone()[0]))

    def commit(self, batch: list[tuple[Any, ...]], new_posts: list[int]) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        for post in new_posts:
            self.connection.execute(NEW_POST, (post, GUILD, f"https://blog.example.com/new/{post}"))
            self.connection.execute(NEW_THREAD, (900_000_000_000_000_000 + post - 1, post, GUILD))
        self.connection.executemany(NEW_COMMENT, batch)
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


class PostgresWriter(Writer):
    """The same writes over an asyncpg connection of its own, driven on this thread's own loop."""

    def __init__(self, url: str, maker: TextMaker) -> None:
        super().__init__(maker)
        self.url = url

    def open(self) -> tuple[int, int]:
        self.loop = asyncio.new_event_loop()
        self.connection: asyncpg.Connection = self.loop.run_until_complete(connect(self.url))
        return (int(self.loop.run_until_complete(self.connection.fetchval("SELECT max(message_id) FROM comments"))),
                int(self.loop.run_until_complete(self.connection.fetchval("SELECT max(id) FROM posts"))))

    async def _commit(self, batch: Sequence[tuple[Any, ...]], new_posts: list[int]) -> None:
        async with self.connection.transaction():
            for post in new_posts:
                await self.connection.execute(numbered(NEW_POST), post, GUILD, f"https://blog.example.com/new/{post}")
                await self.connection.execute(numbered(NEW_THREAD), 900_000_000_000_000_000 + post - 1, post, GUILD)
            await self.connection.executemany(numbered(NEW_COMMENT), batch)

    def commit(self, batch: list[tuple[Any, ...]], new_posts: list[int]) -> None:
        self.loop.run_until_complete(self._commit(batch, new_posts))

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@contextlib.asynccontextmanager
async def on_postgresql(path: Path) -> AsyncIterator[str]:
    """A throw-away PostgreSQL server holding a copy of the SQLite database at ``path``: its URL."""
    binaries = postgresql_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found")
    with temporary_postgresql_server(binaries, durable=True) as server:
        connection = await connect(server.url())
        try:
            started = time.perf_counter()
            await copy_sqlite_to_postgresql(path, connection)
            await connection.execute("ANALYZE")
            print(f"copied into PostgreSQL and analyzed: {time.perf_counter() - started:.1f} s")
        finally:
            await connection.close()
        yield server.url()


async def measure(path: Path, size: int, queries: int, maker: TextMaker, url: str | None) -> None:
    words = pick_words(path, size)
    database = await (open_postgresql(url) if url else Database.open(path))
    writer: Writer = PostgresWriter(url, maker) if url else SqliteWriter(path, maker)
    writer.start()
    try:
        # Warm up the page cache as a running bot would be.
        for text in words.values():
            await lookup.search(database, GUILD, build_fts_query(text))
        # The writer alone first: its own commit times (WAL checkpoints included) as the baseline.
        writer.measuring.set()
        await asyncio.sleep(3)
        writer.measuring.clear()
        alone = [d * 1000 for d in writer.durations]
        writer.durations, writer.rows = [], 0
        writer.measuring.set()
        started = time.perf_counter()
        print(f"\n== {size:,} comments, {database.engine} ==")
        print(f"{'class':<11} {'query':<28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  shown")
        for name, text in words.items():
            query = build_fts_query(text)
            timings = []
            shown = 0
            for _ in range(queries):
                t0 = time.perf_counter()
                results = await lookup.search(database, GUILD, query)
                timings.append((time.perf_counter() - t0) * 1000)
                shown = len(results.posts) + len(results.comments)
            print(f"{name:<11} {text[:28]:<28} {statistics.median(timings):8.2f} "
                  f"{percentile(timings, 0.99):8.2f} {max(timings):8.2f}  {shown}")
        # The other lookups, as their commands run them (stats scans everything: own thread+connection).
        since = datetime(2026, 1, 1, tzinfo=UTC)
        others = {
            "latest 10": lambda: search.latest_posts(database, GUILD, 10),
            "autocomplete": lambda: lookup.title_choices(database, GUILD, words["common"][:3]),
            "post details": lambda: search.post_details(database, GUILD, 2),
            "comment page": lambda: search.comment_page(database, GUILD, 2, 3, 8),
        }
        for name, call in others.items():
            timings = []
            for _ in range(max(20, queries // 5)):
                t0 = time.perf_counter()
                await call()
                timings.append((time.perf_counter() - t0) * 1000)
            print(f"{name:<40} {statistics.median(timings):8.2f} {percentile(timings, 0.99):8.2f} "
                  f"{max(timings):8.2f}")
        t0 = time.perf_counter()
        await search.guild_stats(database, GUILD, since)
        print(f"{'stats (one run)':<40} {(time.perf_counter() - t0) * 1000:8.0f} ms")
        elapsed = time.perf_counter() - started
        writer.measuring.clear()
        stalls = [d * 1000 for d in writer.durations]
        print(f"writer during searches: {writer.rows / elapsed:,.0f} rows/s in {len(stalls)} commits; "
              f"commit p50 {statistics.median(stalls):.2f} ms, p99 {percentile(stalls, 0.99):.2f} ms, "
              f"worst {max(stalls):.2f} ms")
        print(f"writer alone (baseline):  commit p50 {statistics.median(alone):.2f} ms, "
              f"p99 {percentile(alone, 0.99):.2f} ms, worst {max(alone):.2f} ms")
        print(f"commits over 25 ms: {sum(d > 25 for d in stalls) / len(stalls):.2%} during searches, "
              f"{sum(d > 25 for d in alone) / len(alone):.2%} alone")
    finally:
        writer.stop.set()
        writer.join()
        await database.close()


async def run(sizes: list[int], queries: int, keep: Path | None, engine: str) -> None:
    maker = TextMaker(7)
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            path = (keep or Path(folder)) / f"search-{size}.db"
            if not path.exists():
                database = await Database.open(path)  # creates the schema
                await database.close()
                started = time.perf_counter()
                build(path, size, maker)
                print(f"\nbuilt {size:,} comments in {time.perf_counter() - started:.1f} s "
                      f"({path.stat().st_size / 2**20:.0f} MiB)")
            if engine == "postgresql":
                async with on_postgresql(path) as url:
                    await measure(path, size, queries, maker, url)
            else:
                await measure(path, size, queries, maker, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="folder to keep (and reuse) the built databases in")
    arguments = parser.parse_args()
    asyncio.run(run([int(size) for size in arguments.sizes.split(",")], arguments.queries, arguments.keep,
                    arguments.engine))


if __name__ == "__main__":
    main()
