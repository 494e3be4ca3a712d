"""PostgreSQL (asyncpg): connecting, and the schema migrations of bot/storage/migrations_postgresql.

Each migration file runs in one transaction (PostgreSQL's DDL is transactional) together with its
row in ``schema_migrations``, under an advisory lock, so processes migrating at once (shards) apply
each file exactly once and a failing file leaves the previous version intact.
"""

from __future__ import annotations

import asyncpg

from bot.storage.migrate import Migration, MigrationError, available_migrations

MIGRATIONS_PACKAGE = "bot.storage.migrations_postgresql"
# Any fixed number: every conversation-engine process migrating the same database takes this lock.
MIGRATION_LOCK = 0x43_45_4D_49_47  # "CEMIG"
_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at text NOT NULL
        DEFAULT (to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00')
)"""


def postgresql_migrations() -> list[Migration]:
    return available_migrations(MIGRATIONS_PACKAGE)


def latest_postgresql_version() -> int:
    migrations = postgresql_migrations()
    return migrations[-1].version if migrations else 0


# asyncpg prepares every statement; after five runs PostgreSQL may switch a prepared statement to a
# generic plan, which cannot see the tsquery: a search then walks the wrong index (bench/README.md,
# bench/search_engines.py: 10 ms instead of 1 ms for a common word, 100 ms instead of 16 for a rare
# one at 100,000 comments). A custom plan per run costs well under a millisecond of planning.
# No parallel workers: the bot's reads are short and end at a LIMIT, and starting workers cost more
# than they saved (bench/search.py at 1M comments, a word in 0.7% of them walked newest first: 41 ms
# with two workers, 23 ms without; bench/README.md, session 10). No JIT: a statement whose estimate
# crosses jit_above_cost (the search's candidates, whatever way it takes) spent 23 ms compiling to
# run in 1.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan", "max_parallel_workers_per_gather": "0", "jit": "off"}


async def connect(url: str) -> asyncpg.Connection:
    """One connection to the database at ``url`` (postgresql://...)."""
    return await asyncpg.connect(dsn=url, server_settings=SERVER_SETTINGS)


async def current_postgresql_version(connection: asyncpg.Connection) -> int:
    """The schema version of the database; 0 when it was never migrated."""
    tracked = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not tracked:
        return 0
    return int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def server_version(connection: asyncpg.Connection) -> str:
    return str(await connection.fetchval("SHOW server_version")).split(" ")[0]


async def apply_postgresql_migrations(connection: asyncpg.Connection,
                                      migrations: list[Migration] | None = None) -> list[Migration]:
    """Bring the database to the newest schema; returns the migrations applied (by this call).

    Refuses (:class:`MigrationError`) a database whose schema is newer than this code knows."""
    if migrations is None:
        migrations = postgresql_migrations()
    newest = migrations[-1].version if migrations else 0
    applied: list[Migration] = []
    for migration in migrations:
        try:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await connection.execute(_TRACKING_TABLE)
                version = await current_postgresql_version(connection)
                if version > newest:
                    raise MigrationError(
                        f"the database is at schema version {version}, but this conversation-engine only "
                        f"knows versions up to {newest}: upgrade conversation-engine")
                if migration.version <= version:
                    continue
                await connection.execute(migration.sql)
                await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                         migration.version, migration.name)
        except asyncpg.PostgresError as error:
            raise MigrationError(f"migration {migration.name} (PostgreSQL) failed: {error}") from error
        applied.append(migration)
    if not migrations:
        await connection.execute(_TRACKING_TABLE)
    return applied
