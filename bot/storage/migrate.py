"""Numbered SQL migrations, tracked with ``PRAGMA user_version``.

Each file ``NNNN_name.sql`` in ``bot/storage/migrations`` moves the schema from version NNNN-1
to NNNN. Every migration runs in its own transaction: an interrupted or failing migration leaves
the database at the previous version.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The database cannot be brought to the schema this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations(package: str = "bot.storage.migrations") -> list[Migration]:
    """The migrations shipped in ``package`` (SQLite's by default), in order, checked to be numbered 1..N."""
    folder = resources.files(package)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration files are not numbered 1..N: {migration.name} found")
    return found


def latest_version() -> int:
    migrations = available_migrations()
    return migrations[-1].version if migrations else 0


def current_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0])


# RETURNING and ALTER TABLE ... DROP COLUMN came with SQLite 3.35 (2021); the JSON functions and
# FTS5 are compile-time options of older builds.
MIN_SQLITE = (3, 35, 0)


def check_sqlite(connection: sqlite3.Connection,
                 version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse, in plain words, an SQLite library that lacks what the schema and queries use."""
    missing: list[str] = []
    if version < MIN_SQLITE:
        missing.append(f"version {'.'.join(map(str, MIN_SQLITE))} or newer (this one is "
                       f"{'.'.join(map(str, version))})")
    try:
        connection.execute("SELECT json_valid('[]')").fetchone()
    except sqlite3.OperationalError:
        missing.append("the JSON functions")
    try:
        connection.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5 (text)")
        connection.execute("DROP TABLE temp.fts5_probe")
    except sqlite3.OperationalError:
        missing.append("full-text search (FTS5)")
    if missing:
        raise MigrationError(
            f"the SQLite library Python uses lacks {', '.join(missing)}: run conversation-engine on "
            f"a Python whose sqlite3 module has SQLite 3.35+ with JSON and FTS5 (the python.org and "
            f"Docker python:3.11+ builds, Debian 12, Ubuntu 22.04 and newer all do)"
        )


def apply_migrations(connection: sqlite3.Connection,
                     migrations: list[Migration] | None = None) -> list[Migration]:
    """Bring the database to the newest schema; returns the migrations that were applied.

    The connection must be in autocommit mode (``isolation_level=None``): ``executescript``
    commits any open transaction first, so each script carries its own BEGIN ... COMMIT.
    """
    check_sqlite(connection)
    if migrations is None:
        migrations = available_migrations()
    version = current_version(connection)
    newest = migrations[-1].version if migrations else 0
    if version > newest:
        raise MigrationError(
            f"the database is at schema version {version}, but this conversation-engine only knows "
            f"versions up to {newest}: upgrade conversation-engine, or restore a backup made by this version"
        )
    applied: list[Migration] = []
    for migration in migrations:
        if migration.version <= version:
            continue
        script = f"BEGIN IMMEDIATE;\n{migration.sql}\nPRAGMA user_version = {migration.version};\nCOMMIT;"
        try:
            connection.executescript(script)
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.rollback()
            raise MigrationError(f"migration {migration.name} failed: {error}") from error
        applied.append(migration)
    return applied
