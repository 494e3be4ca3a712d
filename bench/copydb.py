"""`copy-db`: rows per second copying a SQLite database into PostgreSQL.

A realistic database (tests/postgres_support.py: every table filled through the storage functions)
plus ``--comments`` plain comments, copied into a fresh database of a throw-away PostgreSQL server
started for the run (durable by default: fsync on, as a real server). Prints the build time, the
copy's wall time and rows per second, once per ``--batch`` size.

    .venv/bin/python bench/copydb.py --comments 100000 --batch 1000 5000 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.storage.copydb import copy_sqlite_to_postgresql
from tests.postgres_server import postgresql_binaries, temporary_postgresql_server
from tests.postgres_support import build_realistic_database


async def copy_once(source: Path, admin_url: str, target_url: str, database: str, batch: int) -> tuple[int, float]:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(target_url)
    try:
        started = time.perf_counter()
        copied = await copy_sqlite_to_postgresql(source, connection, batch_rows=batch)
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return sum(table.postgresql_rows for table in copied), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[5_000])
    parser.add_argument("--fast", action="store_true", help="fsync off (as the tests run the server)")
    args = parser.parse_args()
    binaries = postgresql_binaries()
    if binaries is None:
        print("PostgreSQL server binaries (initdb, pg_ctl) not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "conversation.db"
        started = time.perf_counter()
        asyncio.run(build_realistic_database(source, bulk_comments=args.comments))
        size = sum(path.stat().st_size for path in source.parent.glob("conversation.db*"))
        print(f"built {source.name}: {args.comments} bulk comments, {size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - started:.1f} s")
        with temporary_postgresql_server(binaries, durable=not args.fast) as server:
            for number, batch in enumerate(args.batch):
                name = f"bench_{number}"
                rows, elapsed = asyncio.run(copy_once(source, server.url(), server.url(name), name, batch))
                print(f"batch {batch:>6}: {rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
