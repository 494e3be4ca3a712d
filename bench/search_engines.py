"""The search store on both engines: milliseconds per search, SQLite (FTS5) against PostgreSQL.

The realistic test database (tests/postgres_support.py) plus ``--comments`` plain comments, every
one of them holding the words "reply", "ordinary" and "length" (the worst case: a word in every
comment) and a number of its own (the best case: one match), copied with copy-db into a fresh
database of a throw-away PostgreSQL server (connected as the bot connects: custom plans, see
bot/storage/postgres.py). Each query runs bot.lookup.search's whole path
(posts, comment candidates, term counts, ranking, snippets) ``--repeat`` times on each engine
(all runs of a query on SQLite, then on PostgreSQL); prints the median (p50), the p99 (nearest rank,
as bench/search.py: with 100 runs, the second slowest) and the slowest, and how long building the
SQLite database and copying it took.

    .venv/bin/python bench/search_engines.py --comments 100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.lookup.query import build_fts_query
from bot.lookup.search import search_in
from bot.storage import Database
from bot.storage.copydb import copy_sqlite_to_postgresql
from bot.storage.postgres import connect
from bot.storage.search_store import PostgresSearchStore, SearchStore, SqliteSearchStore
from tests.discussions_support import GUILD_ID
from tests.postgres_server import postgresql_binaries, temporary_postgresql_server
from tests.postgres_support import build_realistic_database

QUERIES = ("reply", '"ordinary length"', "reply -zebra", "Comment 4242", "ordin*", "nothingmatches")


async def timings(store: SearchStore, text: str, repeat: int) -> list[float]:
    query = build_fts_query(text)
    found: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        await search_in(store, GUILD_ID, query)
        found.append((time.perf_counter() - started) * 1000)
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def compare(source: Path, url: str, repeat: int) -> None:
    connection = await connect(url)
    database = await Database.open(source)
    try:
        started = time.perf_counter()
        await copy_sqlite_to_postgresql(source, connection)
        await connection.execute("ANALYZE")
        print(f"copied into PostgreSQL and analyzed: {time.perf_counter() - started:.1f} s")
        stores: dict[str, SearchStore] = {"SQLite": SqliteSearchStore(database),
                                          "PostgreSQL": PostgresSearchStore(connection)}
        print(f"{repeat} runs per query and engine")
        print(f"{'query':<20} " + " ".join(f"{name + ' p50 / p99 / max ms':>30}" for name in stores))
        for text in QUERIES:
            cells = []
            for store in stores.values():
                found = await timings(store, text, repeat)
                cells.append(f"{statistics.median(found):>12.1f} / {percentile(found, 0.99):>6.1f} / "
                             f"{max(found):>6.1f}")
            print(f"{text:<20} " + " ".join(cells), flush=True)
    finally:
        await database.close()
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=100, help="runs per query and engine")
    args = parser.parse_args()
    binaries = postgresql_binaries()
    if binaries is None:
        print("PostgreSQL server binaries (initdb, pg_ctl) not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "conversation.db"
        started = time.perf_counter()
        asyncio.run(build_realistic_database(source, bulk_comments=args.comments))
        print(f"built {source.name}: {args.comments} bulk comments, {time.perf_counter() - started:.1f} s")
        with temporary_postgresql_server(binaries, durable=False) as server:
            asyncio.run(compare(source, server.url(), args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
