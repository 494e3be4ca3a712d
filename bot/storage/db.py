"""The SQLite database: one writer behind a bounded batching queue, one reader for searches.

Writes are plain functions ``(sqlite3.Connection) -> T`` that the storage modules define. They
run on a dedicated writer thread, many of them inside one transaction (up to ``batch_size`` ops,
or whatever arrived within ``max_delay`` seconds). The thread gathers its batches itself and hands
the outcomes back once per batch, so a burst of thousands of messages is stored without stalling
the event loop and without waiting on it (see :class:`WriteQueue`).

A batch first runs without savepoints: FTS5 flushes its pending index data to a new segment at
every SAVEPOINT, so a savepoint per op would turn every message into its own index segment (and
merge work). Only when an op fails is the batch rolled back and run again with one SAVEPOINT per op,
so the failing op fails alone. Ops must therefore be re-runnable: no side effects outside the
connection, since an op may run twice.

Reads go through a separate aiosqlite connection; in WAL mode a slow search never holds a write back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite

from bot.storage.checkpoint import WRITER_AUTOCHECKPOINT_PAGES, Checkpointer
from bot.storage.copies import backup_database
from bot.storage.gil import GilHandOver
from bot.storage.migrate import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]

BUSY_TIMEOUT_MS = 5000


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


@dataclass(slots=True)
class _Pending(Generic[T]):
    op: WriteOp[T]
    future: asyncio.Future[T] | None


class WriteQueue:
    """A bounded queue of write operations drained by one writer thread in batched transactions.

    ``submit`` waits until its op is committed and returns the op's result; ``enqueue`` waits only
    for room in the queue (producers block when it is full, so memory stays bounded) and the op is
    committed as soon as the writer gets to it; ``flush`` waits for everything enqueued before it.

    The writer thread takes ops from a thread-safe queue and gathers its batches itself, and hands
    the outcomes back in one callback per batch. Under a burst the event loop runs thousands of
    callbacks per turn, so every await between a write and its commit would cost a whole turn
    (tens of milliseconds, measured with bench/ingest.py); this way a write costs the loop none.
    A batch is what waits when the writer is free: while one commits, the next gathers, so batches
    grow with the load without holding a lone write back. Each time the writer thread wants the GIL
    back it may wait for a busy loop, so it asks for it as rarely as it can: no waiting for company,
    and no callback when it takes ops unless a producer waits for room.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_pending: int = 10_000,
        batch_size: int = 100,
    ) -> None:
        self._connection = connection
        self._inbox: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._max_pending = max_pending
        self._put_count = 0  # ops put in the inbox (event loop side)
        self._taken_count = 0  # ops the writer took from it (writer thread side)
        self._room_wanted = False  # a producer waits for room: the writer reports when it takes ops
        self._outstanding = 0  # ops put and not yet settled
        self._hand_over: asyncio.TimerHandle | None = None
        self.gil = GilHandOver()  # see bot/storage/gil.py
        self._room = asyncio.Event()
        self._room.set()
        self._batch_size = batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_done: asyncio.Future[None] | None = None
        self._closing = False
        self.batches_committed = 0
        self.ops_committed = 0

    def start(self) -> None:
        if self._thread_done is None:
            self._loop = asyncio.get_running_loop()
            self._thread_done = self._loop.run_in_executor(self._executor, self._write_until_closed)

    @property
    def pending(self) -> int:
        """Ops in the queue the writer has not taken yet."""
        return self._put_count - self._taken_count

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
            self._inbox.put(None)
            await self._thread_done
        if self._hand_over is not None:
            self._hand_over.cancel()
            self._hand_over = None
        self._executor.shutdown(wait=True)

    async def _put(self, pending: _Pending[Any]) -> None:
        while True:
            if self._closing:
                raise WriteQueueClosed("the database is closed; the write was not stored")
            if self.pending < self._max_pending:
                break
            self._room.clear()
            self._room_wanted = True
            # The writer may have taken ops before it saw the flag: look again before waiting.
            if self.pending < self._max_pending:
                break
            await self._room.wait()
        if self._thread_done is None:
            self.start()
        self._put_count += 1
        self._outstanding += 1
        self._inbox.put(pending)
        if self._hand_over is None and self._loop is not None:
            self.gil.restart()
            self._hand_over = self._loop.call_later(self.gil.interval, self._hand_the_gil_over)

    # -- event loop side of the writer thread's callbacks ------------------------------------------

    def _check_room(self) -> None:
        if self.pending < self._max_pending:
            self._room_wanted = False
            self._room.set()

    def _hand_the_gil_over(self) -> None:
        if self._outstanding <= 0 or self._loop is None:
            self._hand_over = None
            return
        self.gil.look()
        self._hand_over = self._loop.call_later(self.gil.interval, self._hand_the_gil_over)

    def _settle(self, batch: Sequence[_Pending[Any]], outcomes: Sequence[tuple[bool, Any]]) -> None:
        self._outstanding -= len(batch)
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if pending.future is None:
                if not ok:
                    log.error("a queued database write failed", exc_info=value)
            elif not pending.future.done():
                if ok:
                    pending.future.set_result(value)
                else:
                    pending.future.set_exception(value)

    # -- the writer thread ----------------------------------------------------------------------------

    def _write_until_closed(self) -> None:
        """Runs on the writer thread until the close marker: take a batch, commit it, report back.

        Should the event loop be closed without close() (a crash on the way out), the thread
        notices within a second, still writes what was queued, and ends, so the process can exit.
        """
        self.gil.writer_started()
        try:
            self._write_batches()
        finally:
            self.gil.writer_finished()

    def _write_batches(self) -> None:
        assert self._loop is not None
        loop = self._loop
        stopping = False
        while not stopping:
            try:
                first = self._inbox.get(timeout=1.0)
            except queue.Empty:
                if loop.is_closed():
                    break
                continue
            if first is None:
                break
            batch = [first]
            stopping = self._collect(batch)
            self.gil.progress += 1
            self._took(len(batch))
            outcomes = self._run_batch_safely(batch)
            self.gil.progress += 1
            self._report(self._settle, batch, outcomes)
        # Anything put before the close marker but gathered after it is written too.
        rest: list[_Pending[Any]] = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            self._took(len(rest))
            self._report(self._settle, rest, self._run_batch_safely(rest))

    def _report(self, callback: Callable[..., None], *arguments: Any) -> None:
        """Hand ``callback`` to the event loop (from the writer thread)."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *arguments)
        except RuntimeError:  # the loop is closed: nobody waits any more, the writes still count
            pass

    def _took(self, count: int) -> None:
        self._taken_count += count  # only this thread writes it; the GIL orders it with the loop's reads
        if self._room_wanted:
            self._report(self._check_room)

    def _collect(self, batch: list[_Pending[Any]]) -> bool:
        """Add what waits in the inbox to ``batch``, up to ``batch_size`` ops, without waiting for
        more. Returns True when the close marker was taken."""
        while len(batch) < self._batch_size:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _run_batch_safely(self, batch: Sequence[_Pending[Any]]) -> list[tuple[bool, Any]]:
        try:
            return self._run_batch([pending.op for pending in batch])
        except Exception as error:  # the writer thread must outlive a failing batch
            log.exception("the database writer failed on a batch of %d operations", len(batch))
            return [(False, error)] * len(batch)

    def _run_batch(self, ops: Sequence[WriteOp[Any]]) -> list[tuple[bool, Any]]:
        """Runs on the writer thread: one transaction; savepoints only if an op fails."""
        together = self._run_together(ops)
        if together is not None:
            return together
        return self._run_isolated(ops)

    def _run_together(self, ops: Sequence[WriteOp[Any]]) -> list[tuple[bool, Any]] | None:
        """All ops in one transaction without savepoints; None (rolled back) when any op fails."""
        connection = self._connection
        results: list[tuple[bool, Any]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            self.gil.progress += 1
            for op in ops:
                results.append((True, op(connection)))
                self.gil.progress += 1
            connection.execute("COMMIT")
        except Exception:  # noqa: BLE001 - the isolated run reports each op's own error
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return None
        self.batches_committed += 1
        self.ops_committed += len(ops)
        return results

    def _run_isolated(self, ops: Sequence[WriteOp[Any]]) -> list[tuple[bool, Any]]:
        """One transaction, a savepoint per op, so a failing op rolls back alone."""
        connection = self._connection
        outcomes: list[tuple[bool, Any]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in ops:
                connection.execute("SAVEPOINT op")
                try:
                    result = op(connection)
                except Exception as error:  # noqa: BLE001 - handed to the op's caller
                    connection.execute("ROLLBACK TO op")
                    connection.execute("RELEASE op")
                    outcomes.append((False, error))
                else:
                    connection.execute("RELEASE op")
                    outcomes.append((True, result))
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            log.exception("a write batch of %d operations could not be committed", len(ops))
            return [(False, error)] * len(ops)
        self.batches_committed += 1
        self.ops_committed += len(ops)
        return outcomes


def _noop(connection: sqlite3.Connection) -> None:
    return None


class Database:
    """The open database: ``write``/``enqueue`` for changes, ``fetch_*`` for reads."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: aiosqlite.Connection,
                 writes: WriteQueue, checkpointer: Checkpointer | None = None) -> None:
        self.path = path
        self._writer = writer
        self.reader = reader
        self.writes = writes
        self._checkpointer = checkpointer

    @classmethod
    async def open(cls, path: Path | str, *, max_pending: int = 10_000, batch_size: int = 100) -> Database:
        """Open (creating the folder and file), migrate, and start the writer."""
        path = Path(path)
        in_memory = str(path) == ":memory:"
        if not in_memory:
            path.parent.mkdir(parents=True, exist_ok=True)
        writer = await asyncio.to_thread(_open_writer, path)
        try:
            reader = await aiosqlite.connect(str(path))
            reader.row_factory = sqlite3.Row
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await reader.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            writer.close()
            raise
        writes = WriteQueue(writer, max_pending=max_pending, batch_size=batch_size)
        writes.start()
        checkpointer = None
        if not in_memory:  # commits no longer checkpoint themselves (see _open_writer)
            checkpointer = Checkpointer(path)
            checkpointer.start()
        return cls(path, writer, reader, writes, checkpointer)

    async def write(self, op: WriteOp[T]) -> T:
        return await self.writes.submit(op)

    async def enqueue(self, op: WriteOp[Any]) -> None:
        await self.writes.enqueue(op)

    async def send(self, op: WriteOp[T]) -> asyncio.Future[T]:
        return await self.writes.send(op)

    async def flush(self) -> None:
        await self.writes.flush()

    async def fetch_all(self, sql: str, parameters: Iterable[Any] = ()) -> list[sqlite3.Row]:
        # execute_fetchall is one hop to the reader thread; a cursor would take three.
        return list(await self.reader.execute_fetchall(sql, tuple(parameters)))

    async def fetch_one(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Row | None:
        # A cursor, so a query without LIMIT never reads more than its first row.
        async with self.reader.execute(sql, tuple(parameters)) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetch_value(self, sql: str, parameters: Iterable[Any] = ()) -> Any:
        row = await self.fetch_one(sql, parameters)
        return None if row is None else row[0]

    async def backup(self, destination: Path | str) -> None:
        """A consistent copy made with SQLite's online backup API while writes go on."""
        await asyncio.to_thread(backup_database, self.path, Path(destination))

    async def close(self) -> None:
        """Commit every queued write, then close both connections."""
        await self.writes.close()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        await self.reader.close()
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

