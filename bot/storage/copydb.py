"""``copy-db``: the SQLite database copied into an empty PostgreSQL database, ids kept.

The SQLite file is opened read-only and read in one transaction (a consistent snapshot, safe while
the bot runs); batches are read on a worker thread. The target is migrated first and filled in one
transaction, so a failure leaves it empty. Its triggers are off during the copy: the rows arrive as
the SQLite triggers already left them (post versions, outbox, blog-reply authors), and the search
documents are built once at the end. Identity sequences are set past the copied ids (the webhook
outbox's past the highest id SQLite ever gave, as its cursors compare ids).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bot.storage.migrate import current_version, latest_version
from bot.storage.postgres import apply_postgresql_migrations
from bot.storage.readonly import connect_read_only

BATCH_ROWS = 5_000
# Tables in an order that satisfies the foreign keys (parents first).
COPIED_TABLES = (
    "meta", "guild_settings", "feeds", "feed_filters", "websub_subscriptions", "posts", "feed_items",
    "announcements", "threads", "comments", "comment_revisions", "attachments", "reactions", "user_privacy",
    "channel_visibility", "web_sessions", "blog_replies", "webhook_outbox", "webhook_targets",
)
# Tables that exist only on PostgreSQL: the migrations' own record and the search documents.
POSTGRESQL_ONLY_TABLES = ("schema_migrations", "posts_fts", "comments_fts")
_SEARCH_DOCUMENTS = (
    "INSERT INTO posts_fts (post_id, document) "
    "SELECT id, post_search_document(title, summary) FROM posts",
    "INSERT INTO comments_fts (message_id, document) "
    "SELECT message_id, to_tsvector('conversation_search', clean_content) FROM comments",
    # Bulk inserts leave a GIN index's new entries in its pending list, which every search then reads
    # through (2.5 ms a search at 100,000 comments, 0.2 ms merged): merge them now.
    "SELECT gin_clean_pending_list('posts_fts_document'), gin_clean_pending_list('comments_fts_document')",
)


class CopyRefused(Exception):
    """The copy cannot start or did not verify; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One copied table: its rows in the SQLite snapshot and, counted again after the copy, in PostgreSQL."""

    table: str
    sqlite_rows: int
    postgresql_rows: int


Progress = Callable[[int], None]


async def copy_sqlite_to_postgresql(sqlite_path: Path, connection: asyncpg.Connection, *,
                                    progress: Progress | None = None,
                                    batch_rows: int = BATCH_ROWS) -> list[TableCopy]:
    """Copy every table of the SQLite database at ``sqlite_path`` into the database of ``connection``.

    Refuses (:class:`CopyRefused`) a SQLite database not at the newest schema, and a target that holds
    tables other than conversation-engine's or any row in them."""
    source = await asyncio.to_thread(_open_snapshot, sqlite_path)
    try:
        counts = await asyncio.to_thread(_count_rows, source)
        await _refuse_non_empty(connection)
        await apply_postgresql_migrations(connection)
        copied: list[TableCopy] = []
        done = 0
        async with connection.transaction():
            for table in COPIED_TABLES:
                await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for table in COPIED_TABLES:
                columns = await asyncio.to_thread(_column_names, source, table)
                cursor = await asyncio.to_thread(source.execute, f"SELECT {', '.join(columns)} FROM {table}")
                while batch := await asyncio.to_thread(cursor.fetchmany, batch_rows):
                    await connection.copy_records_to_table(table, records=batch, columns=columns)
                    done += len(batch)
                    if progress is not None:
                        progress(done)
            for statement in _SEARCH_DOCUMENTS:
                await connection.execute(statement)
            for table in COPIED_TABLES:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            await _advance_identities(connection, source)
            for table in COPIED_TABLES:
                found = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
                if found != counts[table]:
                    raise CopyRefused(f"{table}: {counts[table]} rows in SQLite but {found} copied; "
                                      "nothing was kept in the target")
                copied.append(TableCopy(table, counts[table], found))
            # The planner's statistics, so the first searches on the copy plan with real frequencies.
            await connection.execute("ANALYZE")
        return copied
    finally:
        await asyncio.to_thread(source.close)


def total_rows(sqlite_path: Path) -> int:
    """How many rows :func:`copy_sqlite_to_postgresql` will copy (for a progress bar)."""
    source = _open_snapshot(sqlite_path)
    try:
        return sum(_count_rows(source).values())
    finally:
        source.close()


def _open_snapshot(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise CopyRefused(f"no SQLite database at {path} (DATABASE_PATH)")
    source = connect_read_only(path, check_same_thread=False)
    try:
        version, newest = current_version(source), latest_version()
        if version != newest:
            raise CopyRefused(
                f"the SQLite database {path} is at schema version {version}, this code copies version "
                f"{newest}: " + ("run `conversation-engine migrate` on it first" if version < newest
                                 else "upgrade conversation-engine"))
        source.execute("BEGIN")  # one read transaction: every table from the same moment
    except BaseException:
        source.close()
        raise
    return source


def _count_rows(source: sqlite3.Connection) -> dict[str, int]:
    return {table: int(source.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in COPIED_TABLES}


def _column_names(source: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in source.execute(f"PRAGMA table_info({table})")]


async def _refuse_non_empty(connection: asyncpg.Connection) -> None:
    tables = [str(row["table_name"]) for row in await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "ORDER BY table_name")]
    foreign = [table for table in tables if table not in COPIED_TABLES + POSTGRESQL_ONLY_TABLES]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise CopyRefused(f"the target database is not empty: it has tables of its own ({shown}); "
                          "copy into a new, empty database")
    for table in (table for table in COPIED_TABLES if table in tables):
        rows = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
        if rows:
            raise CopyRefused(f"the target database is not empty: its table {table} holds {rows} row(s); "
                              "copy into a new, empty database")


async def _advance_identities(connection: asyncpg.Connection, source: sqlite3.Connection) -> None:
    """Each identity sequence past the highest id now in its table (and the outbox past every id
    SQLite ever handed out, deleted ones included)."""
    identities = await connection.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'")
    ever_given = dict(await asyncio.to_thread(_sqlite_sequences, source))
    for row in identities:
        table, column = str(row["table_name"]), str(row["column_name"])
        highest = max(int(await connection.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")),
                      ever_given.get(table, 0))
        sequence = await connection.fetchval("SELECT pg_get_serial_sequence($1, $2)", table, column)
        # setval(s, n, true): the next id is n + 1; setval(s, 1, false): the next id is 1.
        await connection.execute("SELECT setval($1, $2, $3)", sequence, max(highest, 1), highest > 0)


def _sqlite_sequences(source: sqlite3.Connection) -> list[tuple[str, int]]:
    rows: list[Any] = source.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
    return [(str(name), int(seq)) for name, seq in rows]
