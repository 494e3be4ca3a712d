"""The SQLite database: one writer thread behind one ordered queue; reads on their own connection.

Every change is a *write op*: a plain function ``(sqlite3.Connection) -> T`` that a storage module
defines. Ops are committed in the order they were queued, by one thread, many in one transaction
(whatever waits when the writer gets to them, up to ``batch_size``). Three ways to queue one:

- ``await database.write(op)`` waits for the commit and returns the op's result (or raises its error);
- ``await database.send(op)`` waits only for room in the queue and returns the future of the commit;
- ``await database.enqueue(op)`` waits only for room; a failure of the op is logged.

A write is never dropped. When SQLite cannot commit for a reason outside the op (another process
holds the lock, the disk is full, an I/O error), the writer keeps the batch, logs one line saying
what is wrong, reports it in ``Database.problem`` (and so on ``/healthz``), retries with a backoff
capped at ``RETRY_CAP_SECONDS`` and goes on by itself once the condition clears. Producers wait
while the queue is full, so memory stays bounded however long that takes.

An op that fails by itself (a constraint, a bug) fails alone: the batch is rolled back and run
again with a SAVEPOINT per op. Not every time, because FTS5 flushes its pending index data at every
SAVEPOINT (a segment per message under a burst). Ops may therefore run more than once: they must
have no side effects outside the connection.

Reads go through a separate aiosqlite connection; in WAL mode a slow search never holds a write back.

Two mechanisms exist for speed only, each shown to be needed for the ingest targets by
bench/ingest.py run with and without it (bench/README.md): while the writer has work the event loop
hands it the GIL now and then (bot/storage/gil.py), and a side thread checkpoints the WAL so no
commit waits for a checkpoint (bot/storage/checkpoint.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiosqlite

from bot.storage.checkpoint import WRITER_AUTOCHECKPOINT_PAGES, Checkpointer
from bot.storage.copies import backup_database
from bot.storage.gil import GilHandOver
from bot.storage.migrate import apply_migrations
from bot.storage.sql import Connection, Row

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[Connection], T]

BUSY_TIMEOUT_MS = 5000
MAX_PENDING_WRITES = 10_000
BATCH_SIZE = 100
RETRY_FIRST_SECONDS = 0.05
RETRY_CAP_SECONDS = 5.0
STALLED_LOOK_SECONDS = 0.1


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(moment: datetime) -> str:
    """The one text form of a time in the database (UTC, sortable)."""
    if moment.tzinfo is not UTC:  # most times are UTC already (Discord's, utcnow()'s)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def from_db_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def connect_sync(path: Path | str) -> sqlite3.Connection:
    """A stdlib connection in autocommit mode with the project's PRAGMAs."""
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    configure(connection)
    return connection


def configure(connection: sqlite3.Connection) -> None:
    # foreign_keys is a no-op inside a transaction, so it is set right after connecting.
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")


class WriteQueueClosed(RuntimeError):
    """A write was submitted after the database was closed."""


class WriterStalled(Exception):
    """SQLite cannot commit right now for a reason outside the ops: the batch is kept and retried."""

    def __init__(self, kind: str, error: BaseException) -> None:
        super().__init__(f"{kind}: {error}")
        self.kind = kind
        self.error = error


# Result codes (the primary code: extended codes keep it in the low byte) that say "not now"
# rather than "this op is wrong". With these SQLite may have rolled the whole transaction back.
_STALL_CODES = {
    sqlite3.SQLITE_BUSY: "locked",
    sqlite3.SQLITE_LOCKED: "locked",
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_IOERR: "io",
    sqlite3.SQLITE_CANTOPEN: "io",
    sqlite3.SQLITE_PROTOCOL: "locked",
    sqlite3.SQLITE_READONLY: "readonly",
    sqlite3.SQLITE_NOMEM: "memory",
}


def stall_kind(error: BaseException) -> str | None:
    """"locked", "full", "io", "readonly" or "memory" when ``error`` is a passing condition."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None:
        return None
    return _STALL_CODES.get(code & 0xFF)


def describe_stall(kind: str, path: Path, waiting: int, error: BaseException) -> str:
    """The one line a stalled writer logs and ``/healthz`` shows."""
    writes = f"{waiting} write{'s' if waiting != 1 else ''} waiting"
    if kind == "locked":
        return (f"database is locked by another process (a backup tool or an sqlite3 shell in a "
                f"transaction?); {writes}, retrying")
    if kind == "full":
        return f"disk full: {path} cannot grow; {writes}; free space on that disk to resume"
    if kind == "readonly":
        return f"the database file {path} is read-only; {writes}; make it writable to resume"
    return f"the database cannot write to {path} ({error}); {writes}, retrying"


class WriterEngine(Protocol):
    """The writer thread's side of one database engine: its connection (what the ops get), its
    transactions, and which of its errors are passing conditions to wait out."""

    @property
    def connection(self) -> Connection: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None:
        """End the open transaction, if any, without its changes (never raises)."""

    def in_transaction(self) -> bool: ...

    def stall_kind(self, error: BaseException) -> str | None:
        """The passing condition ``error`` is ("locked", "full", ...), or None when it is not one."""

    def describe_stall(self, kind: str, waiting: int, error: BaseException) -> str: ...

    def close(self) -> None: ...


class SqliteWriter:
    """SQLite's writer: the stdlib connection, ``BEGIN IMMEDIATE`` transactions."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self.path = path

    @property
    def connection(self) -> sqlite3.Connection:
        return self._connection

    def begin(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._connection.execute("COMMIT")

    def rollback(self) -> None:
        if self._connection.in_transaction:
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite rolled it back itself already
                pass

    def in_transaction(self) -> bool:
        return self._connection.in_transaction

    def stall_kind(self, error: BaseException) -> str | None:
        return stall_kind(error)

    def describe_stall(self, kind: str, waiting: int, error: BaseException) -> str:
        return describe_stall(kind, self.path, waiting, error)

    def close(self) -> None:
        self._connection.close()


@dataclass(slots=True)
class _Pending(Generic[T]):
    op: WriteOp[T]
    future: asyncio.Future[T] | None


class WriteQueue:
    """One ordered queue of write ops, committed in batches by one writer thread.

    The thread takes ops from a thread-safe inbox itself and hands the outcomes back to the event
    loop in one callback per batch: under a burst the loop runs thousands of callbacks per turn, so
    every await between a write and its commit would cost a whole turn (tens of ms, measured with
    bench/ingest.py). A batch is whatever waits when the writer is free, so batches grow with the
    load without holding a lone write back.
    """

    def __init__(self, engine: WriterEngine, *,
                 max_pending: int = MAX_PENDING_WRITES, batch_size: int = BATCH_SIZE) -> None:
        self._engine = engine
        self._inbox: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._max_pending = max_pending
        self._batch_size = batch_size
        # Counts only ever grow; the loop writes _queued, the writer thread _settled (the GIL orders them).
        self._queued = 0
        self._settled = 0
        self._room = asyncio.Event()
        self._room.set()
        self._room_wanted = False  # a producer waits for room: the writer says when it settles ops
        self._stall: WriterStalled | None = None  # why the writer is stalled, while it is
        self.gil = GilHandOver()  # see bot/storage/gil.py
        self._hand_over: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_done: asyncio.Future[None] | None = None
        self._closing = False
        self.batches_committed = 0
        self.ops_committed = 0

    # -- the event loop side -----------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Ops queued and not yet committed (or failed)."""
        return self._queued - self._settled

    @property
    def stall(self) -> tuple[str, int] | None:
        """(what holds the writes back, how many wait) while they are held back: "locked", "full",
        "io", "readonly" or "memory"; None while writes go through."""
        stall = self._stall
        return None if stall is None else (stall.kind, self.waiting)

    @property
    def problem(self) -> str | None:
        """Why writes cannot be committed right now, as the log says it (None while they can)."""
        stall = self._stall
        return None if stall is None else self._engine.describe_stall(stall.kind, self.waiting, stall.error)

    async def submit(self, op: WriteOp[T]) -> T:
        """Queue ``op`` and wait until it is committed; its exception, if any, is raised here."""
        return await (await self.send(op))

    async def send(self, op: WriteOp[T]) -> asyncio.Future[T]:
        """Queue ``op`` (waiting only for room) and return the future of its commit, so the caller
        can let go of a lock before waiting for it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._put(_Pending(op, future))
        return future

    async def enqueue(self, op: WriteOp[Any]) -> None:
        """Queue ``op`` without waiting for the commit (a failure is logged)."""
        await self._put(_Pending(op, None))

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.submit(_noop)

    async def close(self) -> None:
        """Commit everything queued, then stop the writer."""
        if self._closing:
            if self._thread_done is not None:
                await asyncio.shield(self._thread_done)
            return
        self._closing = True
        if self._thread_done is not None:
            if self._stall is not None:
                log.warning("waiting for the database to take %d writes before closing: %s",
                            self.waiting, self.problem)
            self._inbox.put(None)
            await self._thread_done
        if self._hand_over is not None:
            self._hand_over.cancel()
            self._hand_over = None

    async def _put(self, pending: _Pending[Any]) -> None:
        while True:
            if self._closing:
                raise WriteQueueClosed("the database is closed; the write was not stored")
            if self.waiting < self._max_pending:
                break
            self._room.clear()
            self._room_wanted = True
            # The writer may have settled ops before it saw the flag: look again before waiting.
            if self.waiting < self._max_pending:
                break
            await self._room.wait()
        if self._thread is None:
            self._start()
        self._queued += 1
        self._inbox.put(pending)
        if self._hand_over is None and self._loop is not None:
            self.gil.restart()
            self._hand_over = self._loop.call_later(self.gil.interval, self._hand_the_gil_over)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_done = self._loop.create_future()
        # Not a daemon: the process waits for the queued writes to be committed.
        self._thread = threading.Thread(target=self._write_until_closed, name="database-writer")
        self._thread.start()

    def _hand_the_gil_over(self) -> None:
        if self.waiting <= 0 or self._loop is None:
            self._hand_over = None
            return
        if self._stall is not None:  # stalled: the writer sleeps between retries, nothing to hand over
            self._hand_over = self._loop.call_later(STALLED_LOOK_SECONDS, self._hand_the_gil_over)
            return
        self.gil.look()
        self._hand_over = self._loop.call_later(self.gil.interval, self._hand_the_gil_over)

    def _settle(self, batch: Sequence[_Pending[Any]], outcomes: Sequence[tuple[bool, Any]]) -> None:
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if pending.future is None:
                if not ok:
                    log.error("a queued database write failed", exc_info=value)
            elif not pending.future.done():
                if ok:
                    pending.future.set_result(value)
                else:
                    pending.future.set_exception(value)
        if self._room_wanted and self.waiting < self._max_pending:
            self._room_wanted = False
            self._room.set()

    def _finished(self) -> None:
        if self._thread_done is not None and not self._thread_done.done():
            self._thread_done.set_result(None)

    # -- the writer thread -------------------------------------------------------------------------

    def _write_until_closed(self) -> None:
        """Take a batch, commit it, report back; until the close marker.

        Should the event loop be closed without close() (a crash on the way out), the thread
        notices within a second, still writes what was queued, and ends, so the process can exit.
        """
        self.gil.writer_started()
        try:
            closing = False
            while not closing:
                try:
                    first = self._inbox.get(timeout=1.0)
                except queue.Empty:
                    if self._loop is not None and self._loop.is_closed():
                        closing = True
                    continue
                batch = [] if first is None else [first]
                closing = first is None or self._take_more(batch)
                if closing:
                    self._take_rest(batch)
                if batch:
                    outcomes = self._commit(batch)
                    self._settled += len(batch)
                    self._report(self._settle, batch, outcomes)
        finally:
            self.gil.writer_finished()
            self._report(self._finished)

    def _take_more(self, batch: list[_Pending[Any]]) -> bool:
        """Add what waits in the inbox, up to ``batch_size`` ops, without waiting for more.
        Returns True when the close marker was taken."""
        while len(batch) < self._batch_size:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _take_rest(self, batch: list[_Pending[Any]]) -> None:
        """On close: anything put before the marker but not yet taken is written too."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                batch.append(item)

    def _report(self, callback: Callable[..., None], *arguments: Any) -> None:
        """Hand ``callback`` to the event loop (from the writer thread)."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *arguments)
        except RuntimeError:  # the loop is closed: nobody waits any more, the writes still count
            pass

    def _commit(self, batch: Sequence[_Pending[Any]]) -> list[tuple[bool, Any]]:
        """Commit ``batch``, waiting out whatever keeps SQLite from committing: never drops it."""
        ops = [pending.op for pending in batch]
        delay = RETRY_FIRST_SECONDS
        stalled_at: float | None = None
        while True:
            try:
                outcomes = self._run_together(ops)
                if outcomes is None:
                    outcomes = self._run_isolated(ops)
            except WriterStalled as stalled:
                if self._stall is None or self._stall.kind != stalled.kind:  # a line per condition
                    self._stall = stalled
                    log.warning("%s", self.problem)
                self._stall = stalled
                stalled_at = stalled_at or time.monotonic()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_CAP_SECONDS)
                continue
            except Exception as error:  # a bug in the writer itself: fail the batch, keep the thread
                log.exception("the database writer failed on a batch of %d writes", len(ops))
                return [(False, error)] * len(ops)
            if stalled_at is not None:
                log.warning("database writes resumed after %.1f s", time.monotonic() - stalled_at)
                self._stall = None
            self.batches_committed += 1
            self.ops_committed += len(ops)
            return outcomes

    def _stalled(self, error: BaseException) -> WriterStalled | None:
        """Roll back and name ``error`` when it is a passing condition; None otherwise."""
        kind = self._engine.stall_kind(error)
        if kind is None:
            return None
        self._engine.rollback()
        return WriterStalled(kind, error)

    def _run_together(self, ops: Sequence[WriteOp[Any]]) -> list[tuple[bool, Any]] | None:
        """All ops in one transaction without savepoints; None (rolled back) when an op fails."""
        engine = self._engine
        results: list[tuple[bool, Any]] = []
        try:
            engine.begin()
            self.gil.progress += 1
            connection = engine.connection
            for op in ops:
                results.append((True, op(connection)))
                self.gil.progress += 1
            engine.commit()
        except Exception as error:
            stalled = self._stalled(error)
            if stalled is not None:
                raise stalled from error
            engine.rollback()
            return None
        return results

    def _run_isolated(self, ops: Sequence[WriteOp[Any]]) -> list[tuple[bool, Any]]:
        """One transaction, a savepoint per op, so a failing op rolls back alone."""
        engine = self._engine
        outcomes: list[tuple[bool, Any]] = []
        try:
            engine.begin()
            connection = engine.connection
            for op in ops:
                connection.execute("SAVEPOINT op")
                try:
                    result = op(connection)
                except Exception as error:  # handed to the op's caller
                    if engine.stall_kind(error) is not None or not engine.in_transaction():
                        raise  # the transaction is gone (a full disk, a lock): the whole batch runs again
                    connection.execute("ROLLBACK TO op")
                    connection.execute("RELEASE op")
                    outcomes.append((False, error))
                else:
                    connection.execute("RELEASE op")
                    outcomes.append((True, result))
            engine.commit()
        except Exception as error:
            stalled = self._stalled(error)
            if stalled is not None:
                raise stalled from error
            engine.rollback()
            raise  # not a passing condition (an op that ended the transaction itself): the batch fails
        return outcomes


def _noop(connection: Connection) -> None:
    return None


class Reader(Protocol):
    """The read side of one engine: connections of their own, never the writer's."""

    async def fetch_all(self, sql: str, parameters: tuple[Any, ...]) -> list[Row]: ...

    async def fetch_one(self, sql: str, parameters: tuple[Any, ...]) -> Row | None: ...

    async def close(self) -> None: ...


class SqliteReader:
    """One aiosqlite connection; in WAL mode a slow search never holds a write back."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, path: Path) -> SqliteReader:
        connection = await aiosqlite.connect(str(path))
        try:
            connection.row_factory = sqlite3.Row
            await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await connection.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def fetch_all(self, sql: str, parameters: tuple[Any, ...]) -> list[Row]:
        # execute_fetchall is one hop to the reader thread; a cursor would take three.
        return list(await self.connection.execute_fetchall(sql, parameters))

    async def fetch_one(self, sql: str, parameters: tuple[Any, ...]) -> Row | None:
        # A cursor, so a query without LIMIT never reads more than its first row.
        async with self.connection.execute(sql, parameters) as cursor:
            return await cursor.fetchone()

    async def close(self) -> None:
        await self.connection.close()


class Database:
    """The open database: ``write``/``send``/``enqueue`` for changes, ``fetch_*`` for reads.

    ``engine`` is "sqlite" (the file at ``path``, see :meth:`open`) or "postgresql" (``url``, see
    bot.storage.postgres.open_postgresql); everything else is the same on both."""

    def __init__(self, writes: WriteQueue, reader: Reader, *, path: Path | None = None,
                 url: str | None = None, checkpointer: Checkpointer | None = None,
                 writer: WriterEngine | None = None) -> None:
        self.writes = writes
        self.reader = reader
        self._path = path
        self.url = url
        self._checkpointer = checkpointer
        self._writer = writer

    @classmethod
    async def open(cls, path: Path | str, *, max_pending: int = MAX_PENDING_WRITES) -> Database:
        """Open the SQLite database at ``path`` (creating the folder and file), migrate, and start
        the writer."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await asyncio.to_thread(_open_writer, path)
        try:
            reader = await SqliteReader.open(path)
        except BaseException:
            connection.close()
            raise
        checkpointer = Checkpointer(path)  # commits no longer checkpoint themselves (see _open_writer)
        checkpointer.start()
        writer = SqliteWriter(connection, path)
        return cls(WriteQueue(writer, max_pending=max_pending), reader, path=path,
                   checkpointer=checkpointer, writer=writer)

    @property
    def engine(self) -> str:
        """"sqlite" or "postgresql"."""
        return "sqlite" if self._path is not None else "postgresql"

    @property
    def path(self) -> Path:
        """The SQLite file (what only SQLite has: backups, the process lock, file checks)."""
        if self._path is None:
            raise RuntimeError("a PostgreSQL database has no file")
        return self._path

    @property
    def problem(self) -> str | None:
        """Why writes are held back right now (a lock, a full disk), in one line; None when fine."""
        return self.writes.problem

    @property
    def stall(self) -> tuple[str, int] | None:
        """What holds writes back and how many wait (see :attr:`WriteQueue.stall`); None when fine."""
        return self.writes.stall

    async def write(self, op: WriteOp[T]) -> T:
        return await self.writes.submit(op)

    async def send(self, op: WriteOp[T]) -> asyncio.Future[T]:
        return await self.writes.send(op)

    async def enqueue(self, op: WriteOp[Any]) -> None:
        await self.writes.enqueue(op)

    async def flush(self) -> None:
        await self.writes.flush()

    async def fetch_all(self, sql: str, parameters: Iterable[Any] = ()) -> list[Row]:
        return await self.reader.fetch_all(sql, tuple(parameters))

    async def fetch_one(self, sql: str, parameters: Iterable[Any] = ()) -> Row | None:
        return await self.reader.fetch_one(sql, tuple(parameters))

    async def fetch_value(self, sql: str, parameters: Iterable[Any] = ()) -> Any:
        row = await self.fetch_one(sql, parameters)
        return None if row is None else row[0]

    async def backup(self, destination: Path | str) -> None:
        """A consistent copy made with SQLite's online backup API while writes go on."""
        await asyncio.to_thread(backup_database, self.path, Path(destination))

    async def close(self) -> None:
        """Commit every queued write, then close the connections."""
        await self.writes.close()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        await self.reader.close()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)


WRITER_CACHE_KIB = 65_536


def _open_writer(path: Path) -> sqlite3.Connection:
    connection = connect_sync(path)
    # A larger page cache keeps the FTS index's hot pages in memory during message bursts.
    connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    # A side thread checkpoints the WAL (bot/storage/checkpoint.py); SQLite's own checkpoint in a
    # COMMIT only runs should that thread fall far behind.
    connection.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
    try:
        apply_migrations(connection)
    except BaseException:
        connection.close()
        raise
    return connection

