"""The database on PostgreSQL: the same :class:`~bot.storage.db.Database` (one writer thread behind
one ordered queue, reads on their own connections) over asyncpg.

The write ops are plain synchronous functions of a connection, the same ones SQLite runs. Here the
writer thread owns an event loop of its own and one asyncpg connection, and
:class:`PostgresConnection` runs each statement to completion on that loop, so an op reads
``execute(...).fetchone()`` on either engine. The ``?`` placeholders become ``$n``.

A lost connection, a server restarting, a full disk or a serialization failure are passing
conditions: the writer keeps the batch, logs one line, reconnects and commits it again (the ops
have no effect outside the transaction, so running one twice is safe). Reads use a small asyncpg
pool on the bot's own loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bot.storage.db import MAX_PENDING_WRITES, Database, WriteQueue
from bot.storage.postgres import SERVER_SETTINGS, apply_postgresql_migrations, connect
from bot.storage.sql import Row, numbered_placeholders

READ_POOL_SIZE = 4
WRITER_APPLICATION_NAME = "conversation-engine (writer)"
CONNECT_TIMEOUT_SECONDS = 10.0

# SQLSTATE classes and codes that say "not now" rather than "this op is wrong".
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
                asyncpg.TooManyConnectionsError)
_STALL_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((asyncpg.DiskFullError,), "full"),
    ((asyncpg.OutOfMemoryError,), "memory"),
    ((asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError), "locked"),
    ((asyncpg.ReadOnlySQLTransactionError,), "readonly"),
    (_UNREACHABLE, "unreachable"),
)


def postgresql_stall_kind(error: BaseException) -> str | None:
    for kinds, name in _STALL_KINDS:
        if isinstance(error, kinds):
            return name
    return None


def server_name(url: str) -> str:
    """host:port of ``url``, for messages (never the password)."""
    parts = urlsplit(url)
    host = parts.hostname or "the local socket"
    return f"{host}:{parts.port or 5432}"


@functools.lru_cache(maxsize=2048)
def _statement(sql: str) -> tuple[str, bool]:
    """The statement in PostgreSQL's placeholders, and whether it returns rows."""
    query = numbered_placeholders(sql)
    head = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
    return query, head in ("SELECT", "WITH", "VALUES", "SHOW") or "RETURNING" in query.upper()


def _status_count(status: str) -> int:
    """The row count in a command status ("UPDATE 3", "INSERT 0 1"); -1 when it has none."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PostgresCursor:
    """The rows (or the row count) of one statement, read like a sqlite3 cursor."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        return self._rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresConnection:
    """One asyncpg connection driven synchronously from the writer thread, on that thread's loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: asyncpg.Connection | None = None

    def _run(self, awaitable: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(awaitable)

    def open(self) -> None:
        """Connect unless connected (a failure is a passing condition: the writer retries)."""
        if self._connection is not None and not self._connection.is_closed():
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._connection = self._run(asyncpg.connect(
            dsn=self.url, timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={**SERVER_SETTINGS, "application_name": WRITER_APPLICATION_NAME}))

    def drop(self) -> None:
        """Forget a connection that failed; the next ``open`` makes a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    @property
    def _live(self) -> asyncpg.Connection:
        if self._connection is None:
            raise asyncpg.InterfaceError("the writer's PostgreSQL connection is not open")
        return self._connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PostgresCursor:
        query, returns_rows = _statement(sql)
        if returns_rows:
            rows = self._run(self._live.fetch(query, *parameters))
            return PostgresCursor(rows, len(rows))
        status = self._run(self._live.execute(query, *parameters))
        return PostgresCursor([], _status_count(status))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PostgresCursor:
        query, _ = _statement(sql)
        self._run(self._live.executemany(query, [tuple(row) for row in parameters]))
        return PostgresCursor([], -1)

    def in_transaction(self) -> bool:
        return self._connection is not None and self._connection.is_in_transaction()

    def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            try:
                self._run(self._connection.close(timeout=5))
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._connection.terminate()
        self._connection = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class PostgresWriter:
    """PostgreSQL's writer: :class:`PostgresConnection`, reconnecting after a lost connection."""

    def __init__(self, url: str) -> None:
        self._connection = PostgresConnection(url)
        self._server = server_name(url)

    @property
    def connection(self) -> PostgresConnection:
        return self._connection

    def begin(self) -> None:
        self._connection.open()
        self._connection.execute("BEGIN")

    def commit(self) -> None:
        self._connection.execute("COMMIT")

    def rollback(self) -> None:
        if not self._connection.in_transaction():
            return
        try:
            self._connection.execute("ROLLBACK")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._connection.drop()

    def in_transaction(self) -> bool:
        return self._connection.in_transaction()

    def stall_kind(self, error: BaseException) -> str | None:
        kind = postgresql_stall_kind(error)
        if kind == "unreachable":
            self._connection.drop()  # a new connection for the retry
        return kind

    def describe_stall(self, kind: str, waiting: int, error: BaseException) -> str:
        writes = f"{waiting} write{'s' if waiting != 1 else ''} waiting"
        if kind == "unreachable":
            return (f"PostgreSQL at {self._server} cannot be reached ({type(error).__name__}: {error}); "
                    f"{writes}, reconnecting")
        if kind == "full":
            return f"PostgreSQL at {self._server} has a full disk; {writes}; free space on its disk to resume"
        if kind == "readonly":
            return (f"PostgreSQL at {self._server} accepts no writes (a standby, or read-only mode); "
                    f"{writes}, retrying")
        if kind == "locked":
            return f"PostgreSQL at {self._server} reports a conflict ({error}); {writes}, retrying"
        return f"PostgreSQL at {self._server} cannot write ({error}); {writes}, retrying"

    def close(self) -> None:
        self._connection.close()


class PostgresReader:
    """A small asyncpg pool on the bot's loop."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def fetch_all(self, sql: str, parameters: tuple[Any, ...]) -> list[Row]:
        query, _ = _statement(sql)
        return list(await self.pool.fetch(query, *parameters))

    async def fetch_one(self, sql: str, parameters: tuple[Any, ...]) -> Row | None:
        query, _ = _statement(sql)
        return await self.pool.fetchrow(query, *parameters)

    async def close(self) -> None:
        await self.pool.close()


async def open_postgresql(url: str, *, max_pending: int = MAX_PENDING_WRITES) -> Database:
    """Migrate the database at ``url`` and open it: the writer thread, and a pool for reads."""
    connection = await connect(url)
    try:
        await apply_postgresql_migrations(connection)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(dsn=url, min_size=1, max_size=READ_POOL_SIZE,
                                     server_settings=SERVER_SETTINGS)
    writer = PostgresWriter(url)
    return Database(WriteQueue(writer, max_pending=max_pending), PostgresReader(pool), url=url, writer=writer)


# Any fixed number: the conversation-engine processes sharing one database elect through it.
BOT_WIDE_LOCK = 0x43_45_52_4F_4C  # "CEROL"
# The server drops the connection of a client that vanished without closing it (a host that died,
# a cut network) after 10 s idle + 3 unanswered probes 5 s apart: the lock is free within ~25 s.
KEEPALIVE_SETTINGS = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}
LOCK_CHECK_TIMEOUT_SECONDS = 5.0


# The channel on which a process that stored posts tells the others ("announce them").
ANNOUNCE_CHANNEL = "conversation_engine_announce"


class BotWideLock:
    """The bot-wide role: a session advisory lock on a connection of its own, held while that
    connection lives. A process that exits or is killed closes it, and the lock is free at once.

    The same connection carries the processes' wake-ups: :meth:`tell_others` sends one (NOTIFY),
    and ``on_told`` is called for each one heard (LISTEN), whichever process holds the role."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: asyncpg.Connection | None = None
        self._using = asyncio.Lock()  # one statement at a time on the connection
        self.on_told: Callable[[], None] | None = None

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(
                dsn=self._url, timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={**SERVER_SETTINGS, **KEEPALIVE_SETTINGS,
                                 "application_name": "conversation-engine (bot-wide role)"})
            await self._connection.add_listener(ANNOUNCE_CHANNEL, self._heard)
        return self._connection

    def _heard(self, connection: object, pid: int, channel: str, payload: str) -> None:
        if self.on_told is not None:
            self.on_told()

    async def tell_others(self) -> None:
        """Wake the announcer of whichever process holds the role (this one included)."""
        async with self._using:
            connection = await self._connected()
            await connection.execute("SELECT pg_notify($1, '')", ANNOUNCE_CHANNEL)

    async def try_take(self) -> bool:
        """Take the role if no other process holds it."""
        async with self._using:
            connection = await self._connected()
            return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", BOT_WIDE_LOCK))

    async def still_held(self) -> bool:
        """False once the connection holding the lock is gone (the lock went with it)."""
        async with self._using:
            connection = self._connection
            if connection is None or connection.is_closed():
                return False
            try:
                await asyncio.wait_for(connection.fetchval("SELECT 1"), LOCK_CHECK_TIMEOUT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._connection = None
                connection.terminate()
                return False
            return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=LOCK_CHECK_TIMEOUT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()


async def open_database(path: Path, url: str | None, *, max_pending: int = MAX_PENDING_WRITES) -> Database:
    """The configured database: PostgreSQL at ``url`` when there is one, else the SQLite file ``path``."""
    if url:
        return await open_postgresql(url, max_pending=max_pending)
    return await Database.open(path, max_pending=max_pending)
