"""Built discussions kept in memory, keyed by the post's version (``posts.version``, bumped by
triggers on every write the blog would show), so a request for an unchanged discussion costs one
lookup and no rendering or encoding. Concurrent requests for the same missing entry share one build.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    version: int
    value: T
    size: int


class VersionedCache(Generic[T]):
    """Newest built value per key, least recently used dropped beyond ``budget_bytes``."""

    def __init__(self, size_of: Callable[[T], int], *, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._size_of = size_of
        self._budget = budget_bytes
        self._used = 0
        self._entries: OrderedDict[int, _Entry[T]] = OrderedDict()
        self._building: dict[tuple[int, int], asyncio.Future[T]] = {}

    async def get(self, key: int, version: int, build: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(key)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(key)
            return entry.value
        pending = self._building.get((key, version))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._building[(key, version)] = future
        try:
            value = await build()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # marked as retrieved: nobody else may be waiting
            raise
        finally:
            del self._building[(key, version)]
        future.set_result(value)
        self._store(key, version, value)
        return value

    def _store(self, key: int, version: int, value: T) -> None:
        current = self._entries.get(key)
        if current is not None and current.version > version:
            return  # a newer build finished first
        if current is not None:
            self._used -= current.size
        entry = _Entry(version, value, self._size_of(value))
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._used += entry.size
        while self._used > self._budget and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._used -= dropped.size

    def __len__(self) -> int:
        return len(self._entries)


K = TypeVar("K", bound=Hashable)


class SharedCalls(Generic[K, T]):
    """Concurrent calls with the same key share one run: a burst of 200 requests for one discussion
    makes a handful of post lookups on the reader connection instead of 200. A caller gets the
    answer of a run that started before it asked or while it waited, never an older one. The run is
    its own task, so a caller that goes away does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    async def run(self, key: K, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: K, done: asyncio.Task[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone
