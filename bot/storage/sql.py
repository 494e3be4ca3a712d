"""What a write op sees of the database, the same on SQLite and PostgreSQL.

A write op is ``(Connection) -> T``: it runs statements with ``connection.execute(sql, parameters)``
and reads the cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``). On SQLite the connection
is the stdlib's own; on PostgreSQL it is :class:`bot.storage.postgres.PostgresConnection`, which runs
the same SQL through asyncpg. SQL is written once, in the dialect both engines share: ``?``
placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING``, text times, integer flags. The few
statements that cannot be shared ask :func:`on_postgresql`.

Rows are ``sqlite3.Row`` or ``asyncpg.Record``: both read by column name or by position.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import asyncpg

# A row of either engine (sqlite3.Row, asyncpg.Record): row["column"] or row[0].
Row = Any


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


# A constraint an op broke (a duplicate key, a missing parent row), on either engine.
INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
# The database failed (a statement, or a PostgreSQL server out of reach), as opposed to a bug.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def on_postgresql(connection: Connection) -> bool:
    """True when ``connection`` is PostgreSQL's (for the few statements the engines write apart)."""
    return not isinstance(connection, sqlite3.Connection)


@functools.lru_cache(maxsize=2048)
def numbered_placeholders(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (and SQLite's numbered ``?3`` as ``$3``); a
    ``?`` in a quoted string or identifier stays as it is."""
    parts: list[str] = []
    number = 0
    quote: str | None = None
    for index, character in enumerate(sql):
        if quote is not None:
            if character == quote:
                quote = None
        elif character in ("'", '"'):
            quote = character
        elif character == "?":
            if sql[index + 1:index + 2].isdigit():
                parts.append("$")  # the digits that follow are its number
                continue
            number += 1
            parts.append(f"${number}")
            continue
        parts.append(character)
    return "".join(parts)


@contextlib.contextmanager
def on_its_own(connection: Connection) -> Iterator[None]:
    """Around a statement whose failure the op handles itself: SQLite undoes a failed statement
    alone, but on PostgreSQL a failed statement aborts the whole transaction unless it ran inside a
    savepoint of its own. (No savepoint on SQLite: there each one flushes the FTS index.)"""
    if not on_postgresql(connection):
        yield
        return
    connection.execute("SAVEPOINT statement")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK TO statement")
        connection.execute("RELEASE statement")
        raise
    connection.execute("RELEASE statement")
