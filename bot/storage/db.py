"""The SQLite database: one writer behind a bounded batching queue, one reader for searches.

Writes are plain functions ``(sqlite3.Connection) -> T`` that the storage modules define. They
run on a dedicated writer thread, many of them inside one transaction (up to ``batch_size`` ops,
or whatever arrived within ``max_delay`` seconds). One thread hop per batch instead of one per
statement is what lets a burst of thousands of messages be stored without stalling the event loop.

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
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite

from bot.storage.fts import index_pending_comments
from bot.storage.migrate import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]
# Work the writer does when it is idle, in the same transaction; returns True when more remains.
Maintenance = Callable[[sqlite3.Connection], bool]

BUSY_TIMEOUT_MS = 5000


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(moment: datetime) -> str:
    """The one text form of a time in the database (UTC, sortable)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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
    enqueued_at: float = field(default_factory=time.monotonic)


class WriteQueue:
    """A bounded queue of write operations drained by one writer in batched transactions.

    ``submit`` waits until its op is committed and returns the op's result; ``enqueue`` waits only
    for room in the queue (producers block when it is full, so memory stays bounded) and the op is
    committed within ``max_delay`` seconds; ``flush`` waits for everything enqueued before it.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_pending: int = 10_000,
        batch_size: int = 100,
        max_delay: float = 0.05,
        linger: float = 0.002,
        maintenance: Maintenance | None = None,
    ) -> None:
        self._connection = connection
        self._queue: asyncio.Queue[_Pending[Any] | None] = asyncio.Queue(maxsize=max_pending)
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._linger = linger
        self._maintenance = maintenance
        self._maintenance_due = maintenance is not None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches_committed = 0
        self.ops_committed = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sqlite-writer")

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def submit(self, op: WriteOp[T]) -> T:
        """Queue ``op`` and wait until it is committed; its exception, if any, is raised here."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._put(_Pending(op, future))
        return await future

    async def enqueue(self, op: WriteOp[Any]) -> None:
        """Queue ``op`` without waiting for the commit (a failure is logged)."""
        await self._put(_Pending(op, None))

    async def flush(self) -> None:
        """Wait until everything queued so far is committed and the maintenance work is done."""
        await self.submit(_noop)
        while self._maintenance_due and not self._closed:
            await self.submit(_noop)

    def set_maintenance(self, maintenance: Maintenance | None) -> None:
        self._maintenance = maintenance
        self._maintenance_due = maintenance is not None

    async def close(self) -> None:
        """Commit everything queued, then stop the writer."""
        if self._closed:
            return
        if self._task is not None:
            await self._queue.put(None)
            await self._task
        self._closed = True
        self._executor.shutdown(wait=True)

    async def _put(self, pending: _Pending[Any]) -> None:
        if self._closed:
            raise WriteQueueClosed("the database is closed; the write was not stored")
        if self._task is None:
            self.start()
        await self._queue.put(pending)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            batch: list[_Pending[Any]] = []
            if not (self._maintenance_due and self._queue.empty()):
                first = await self._queue.get()
                if first is None:
                    break
                batch.append(first)
                stopping = await self._collect(batch)
            # Maintenance (indexing new comments) only when nothing else waits: under a burst the
            # writes go first, and the index catches up in bounded chunks right after.
            maintain = self._maintenance is not None and self._queue.empty()
            try:
                outcomes, more = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.op for p in batch], maintain)
            except Exception as error:
                log.exception("the database writer failed on a batch of %d operations", len(batch))
                outcomes, more = [(False, error)] * len(batch), False
            if self._maintenance is not None:
                self._maintenance_due = more if maintain else True
            for pending, (ok, value) in zip(batch, outcomes, strict=True):
                if pending.future is None:
                    if not ok:
                        log.error("a queued database write failed", exc_info=value)
                elif not pending.future.done():
                    if ok:
                        pending.future.set_result(value)
                    else:
                        pending.future.set_exception(value)
        # Anything still queued (put before close) is written too; the index catches up on next start.
        rest: list[_Pending[Any]] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                rest.append(item)
        if rest:
            outcomes, _ = await loop.run_in_executor(self._executor, self._run_batch, [p.op for p in rest], False)
            for pending, (ok, value) in zip(rest, outcomes, strict=True):
                if pending.future is not None and not pending.future.done():
                    if ok:
                        pending.future.set_result(value)
                    else:
                        pending.future.set_exception(value)

    async def _collect(self, batch: list[_Pending[Any]]) -> bool:
        """Add what arrives to ``batch``: up to ``batch_size`` ops, waiting at most ``linger`` for
        each next one and ``max_delay`` in all (a lone write is not held back for company).
        Returns True when the close marker was taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_delay
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = min(self._linger, deadline - loop.time())
                if remaining <= 0:
                    return False
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _run_batch(self, ops: Sequence[WriteOp[Any]], maintain: bool) -> tuple[list[tuple[bool, Any]], bool]:
        """Runs on the writer thread: one transaction; savepoints only if an op fails. Returns the
        ops' outcomes and whether maintenance work remains."""
        together = self._run_together(ops, maintain)
        if together is not None:
            return together
        return self._run_isolated(ops), True

    def _run_together(self, ops: Sequence[WriteOp[Any]],
                      maintain: bool) -> tuple[list[tuple[bool, Any]], bool] | None:
        """All ops in one transaction without savepoints; None (rolled back) when any op fails."""
        connection = self._connection
        results: list[tuple[bool, Any]] = []
        more = False
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in ops:
                results.append((True, op(connection)))
            if maintain and self._maintenance is not None:
                more = self._maintain(connection)
            connection.execute("COMMIT")
        except Exception:  # noqa: BLE001 - the isolated run reports each op's own error
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return None
        self.batches_committed += 1
        self.ops_committed += len(ops)
        return results, more

    def _maintain(self, connection: sqlite3.Connection) -> bool:
        """The maintenance step in its own savepoint: a failure undoes only it, is logged, and is
        not retried until the next write."""
        assert self._maintenance is not None
        connection.execute("SAVEPOINT maintenance")
        try:
            more = self._maintenance(connection)
        except sqlite3.Error:
            connection.execute("ROLLBACK TO maintenance")
            connection.execute("RELEASE maintenance")
            log.exception("indexing new comments failed; it is tried again after the next write")
            return False
        connection.execute("RELEASE maintenance")
        return more

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
                 writes: WriteQueue) -> None:
        self.path = path
        self._writer = writer
        self.reader = reader
        self.writes = writes

    @classmethod
    async def open(cls, path: Path | str, *, max_pending: int = 10_000, batch_size: int = 100,
                   max_delay: float = 0.05) -> Database:
        """Open (creating the folder and file), migrate, and start the writer."""
        path = Path(path)
        if str(path) != ":memory:":
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
        writes = WriteQueue(writer, max_pending=max_pending, batch_size=batch_size, max_delay=max_delay,
                            maintenance=index_pending_comments)
        writes.start()
        return cls(path, writer, reader, writes)

    async def write(self, op: WriteOp[T]) -> T:
        return await self.writes.submit(op)

    async def enqueue(self, op: WriteOp[Any]) -> None:
        await self.writes.enqueue(op)

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
        await self.reader.close()
        await asyncio.to_thread(self._writer.close)


WRITER_CACHE_KIB = 65_536


def _open_writer(path: Path) -> sqlite3.Connection:
    connection = connect_sync(path)
    # A larger page cache keeps the FTS index's hot pages in memory during message bursts.
    connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    try:
        apply_migrations(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def backup_database(source: Path, destination: Path) -> None:
    """Copy ``source`` to ``destination`` with the online backup API (pages in steps, so writers
    are only paused between steps)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        destination.unlink()
    src = sqlite3.connect(str(source))
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        dst = sqlite3.connect(str(destination))
        try:
            src.backup(dst, pages=256)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
