"""PostgreSQL schema: the migrations apply on a fresh database, again as a no-op, one file at a time
(a failing file leaves the previous version), refuse a newer schema, and build the same tables and
columns (in order, nullability, primary keys) as the SQLite migrations."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.storage.copydb import COPIED_TABLES, POSTGRESQL_ONLY_TABLES
from bot.storage.db import connect_sync
from bot.storage.migrate import Migration, MigrationError, apply_migrations
from bot.storage.postgres import (
    apply_postgresql_migrations,
    connect,
    current_postgresql_version,
    latest_postgresql_version,
    postgresql_migrations,
)

# (name, not null, part of the primary key) per column, in order.
Columns = list[tuple[str, bool, bool]]


@pytest.fixture
async def connection(postgresql_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgresql_url)
    try:
        yield connection
    finally:
        await connection.close()


def sqlite_schema(folder: Path) -> dict[str, Columns]:
    """The tables of a database the SQLite migrations built (FTS5 tables and SQLite's own left out)."""
    connection = connect_sync(folder / "schema.db")
    try:
        apply_migrations(connection)
        names = [str(row[0]) for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'posts_fts%' AND name NOT LIKE 'comments_fts%' ORDER BY name")]
        schema: dict[str, Columns] = {}
        for name in names:
            rows: list[sqlite3.Row] = connection.execute(f"PRAGMA table_info({name})").fetchall()
            # A primary key column is NOT NULL on PostgreSQL; SQLite only reports it as a key.
            schema[name] = [(str(row[1]), bool(row[3]) or bool(row[5]), bool(row[5])) for row in rows]
        return schema
    finally:
        connection.close()


async def postgresql_schema(connection: asyncpg.Connection) -> dict[str, Columns]:
    keys = {(str(row["table_name"]), str(row["column_name"])) for row in await connection.fetch(
        "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
        "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
        "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema()")}
    schema: dict[str, Columns] = {}
    for row in await connection.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        table, column = str(row["table_name"]), str(row["column_name"])
        if table in POSTGRESQL_ONLY_TABLES:
            continue
        schema.setdefault(table, []).append((column, row["is_nullable"] == "NO", (table, column) in keys))
    return schema


async def test_a_fresh_database_gets_every_migration_then_none_again(connection: asyncpg.Connection) -> None:
    assert await current_postgresql_version(connection) == 0
    applied = await apply_postgresql_migrations(connection)
    assert [m.version for m in applied] == [m.version for m in postgresql_migrations()]
    assert await current_postgresql_version(connection) == latest_postgresql_version()
    assert await apply_postgresql_migrations(connection) == []
    tracked = await connection.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(row["version"], row["name"]) for row in tracked] == [(m.version, m.name) for m in postgresql_migrations()]


async def test_both_engines_have_the_same_tables_and_columns(connection: asyncpg.Connection,
                                                              tmp_path: Path) -> None:
    await apply_postgresql_migrations(connection)
    on_sqlite = sqlite_schema(tmp_path)
    on_postgresql = await postgresql_schema(connection)
    assert sorted(on_postgresql) == sorted(on_sqlite)
    for table, columns in on_sqlite.items():
        assert on_postgresql[table] == columns, f"table {table} differs between SQLite and PostgreSQL"
    # copy-db copies every table there is.
    assert sorted(COPIED_TABLES) == sorted(on_sqlite)


async def test_a_failing_migration_leaves_the_previous_version(connection: asyncpg.Connection) -> None:
    migrations = postgresql_migrations()
    broken = Migration(len(migrations) + 1, f"{len(migrations) + 1:04d}_broken.sql",
                       "CREATE TABLE half_done (id bigint); ALTER TABLE no_such_table ADD COLUMN x text;")
    with pytest.raises(MigrationError, match="_broken.sql"):
        await apply_postgresql_migrations(connection, [*migrations, broken])
    assert await current_postgresql_version(connection) == latest_postgresql_version()
    assert await connection.fetchval("SELECT to_regclass('half_done')") is None


async def test_a_newer_schema_is_refused(connection: asyncpg.Connection) -> None:
    await apply_postgresql_migrations(connection)
    newer = latest_postgresql_version() + 1
    await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future.sql')", newer)
    with pytest.raises(MigrationError, match=f"schema version {newer}.*upgrade conversation-engine"):
        await apply_postgresql_migrations(connection)
    assert await current_postgresql_version(connection) == newer


async def test_post_search_documents_weigh_the_title_and_keep_it_apart(connection: asyncpg.Connection) -> None:
    """Migration 4: documents written before it are rebuilt; the trigger builds the same document on
    insert and update; title words match with weight A only; a phrase never spans title and summary."""
    migrations = postgresql_migrations()
    weighted = next(m.version for m in migrations if m.name.endswith("_weighted_post_search.sql"))
    await apply_postgresql_migrations(connection, [m for m in migrations if m.version < weighted])
    await connection.execute(
        "INSERT INTO posts (id, guild_id, canonical_url, title, summary, published_at, first_seen_at) "
        "VALUES (1, 1, 'https://a.example/1', 'Tomato diary', 'Feeding the sauce', 'x', 'x')")
    await apply_postgresql_migrations(connection)

    async def document_is_built(post_id: int) -> bool:
        return bool(await connection.fetchval(
            "SELECT f.document = post_search_document(p.title, p.summary) FROM posts_fts f "
            "JOIN posts p ON p.id = f.post_id WHERE p.id = $1", post_id))

    async def matches(query: str) -> bool:
        return bool(await connection.fetchval(
            "SELECT document @@ to_tsquery('conversation_search', $1) FROM posts_fts WHERE post_id = 1", query))

    assert await document_is_built(1)  # rebuilt by the migration
    assert await matches("'tomato':A") and not await matches("'sauce':A") and await matches("'sauce'")
    assert not await matches("'diary' <-> 'feeding'") and await matches("'feeding' <-> 'the'")
    await connection.execute("UPDATE posts SET title = 'Café', summary = 'Tomato' WHERE id = 1")
    assert await document_is_built(1)
    assert await matches("'cafe':*A") and not await matches("'tomato':A") and await matches("'tomato'")
    await connection.execute(
        "INSERT INTO posts (id, guild_id, canonical_url, title, published_at, first_seen_at) "
        "VALUES (2, 1, 'https://a.example/2', 'No summary', 'x', 'x')")
    assert await document_is_built(2)


async def test_the_bot_s_connections_plan_every_statement_with_its_values(postgresql_url: str) -> None:
    """Generic plans cannot see a search's tsquery (bench/README.md): every run gets a custom plan."""
    connection = await connect(postgresql_url)
    try:
        assert await connection.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await connection.close()


# Per table: (columns, unique) of every index on plain columns, (column, parent table, on delete) of
# every foreign key, the columns with a default, and how many CHECK constraints it has.
Constraints = dict[str, tuple[set[tuple[tuple[str, ...], bool]], set[tuple[str, str, str]], set[str], int]]


def sqlite_constraints(folder: Path) -> Constraints:
    connection = connect_sync(folder / "constraints.db")
    try:
        apply_migrations(connection)
        found: Constraints = {}
        for name, sql in connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND name NOT LIKE 'posts_fts%' AND name NOT LIKE 'comments_fts%'"):
            indexes = set()
            for index in connection.execute(f"PRAGMA index_list({name})").fetchall():
                if index["origin"] == "pk" or index["partial"]:
                    continue
                columns = tuple(str(row["name"]) for row in connection.execute(f"PRAGMA index_info({index['name']})"))
                if all(columns):
                    indexes.add((columns, bool(index["unique"])))
            keys = {(str(row["from"]), str(row["table"]), str(row["on_delete"]))
                    for row in connection.execute(f"PRAGMA foreign_key_list({name})")}
            defaults = {str(row["name"]) for row in connection.execute(f"PRAGMA table_info({name})")
                        if row["dflt_value"] is not None}
            found[str(name)] = (indexes, keys, defaults, len(re.findall(r"\bCHECK\s*\(", str(sql).upper())))
        return found
    finally:
        connection.close()


async def postgresql_constraints(connection: asyncpg.Connection) -> Constraints:
    found: Constraints = {}
    tables = [str(row[0]) for row in await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    for table in tables:
        if table in POSTGRESQL_ONLY_TABLES:
            continue
        indexes = {(tuple(row["columns"]), bool(row["indisunique"])) for row in await connection.fetch(
            "SELECT i.indisunique, array_agg(a.attname ORDER BY k.ordinality) AS columns FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ordinality) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = $1::regclass AND NOT i.indisprimary AND i.indpred IS NULL "
            "AND 0 <> ALL (i.indkey) GROUP BY i.indexrelid, i.indisunique", table)}
        keys = {(str(row["column"]), str(row["parent"]), str(row["on_delete"])) for row in await connection.fetch(
            "SELECT a.attname AS column, c.confrelid::regclass::text AS parent, "
            "CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'r' THEN 'RESTRICT' "
            "WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END AS on_delete FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = $1::regclass AND c.contype = 'f'", table)}
        defaults = {str(row[0]) for row in await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = $1 AND column_default IS NOT NULL", table)}
        checks = int(await connection.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'", table))
        found[table] = (indexes, keys, defaults, checks)
    return found


async def test_both_engines_have_the_same_indexes_keys_defaults_and_checks(connection: asyncpg.Connection,
                                                                           tmp_path: Path) -> None:
    await apply_postgresql_migrations(connection)
    on_sqlite = sqlite_constraints(tmp_path)
    on_postgresql = await postgresql_constraints(connection)
    assert sorted(on_postgresql) == sorted(on_sqlite)
    differences = {table: (on_sqlite[table], on_postgresql[table]) for table in on_sqlite
                   if on_sqlite[table] != on_postgresql[table]}
    assert differences == {}, differences
