"""The announcement loop's wake-up: "posts were stored, announce them now".

Whatever stores posts with a ``queued`` announcement (a scheduled poll, ``/feed poll``, a push from a
hub, ``/feed retry``) calls :meth:`AnnounceWake.wake` once its write is committed; the announcement
loop runs a cycle at once instead of at its next interval. The per-channel rate
(``ANNOUNCEMENTS_PER_CYCLE`` per window, :mod:`bot.announce.plan`) still decides how many go out, so
frequent wakes cannot flood a channel. The bot object owns the one instance.

Processes sharing a PostgreSQL database tell each other (:meth:`tell_other_processes`): the one that
stored the posts may not be the one elected to announce them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class AnnounceWake:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._tell_others: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._telling: set[asyncio.Task[None]] = set()

    def tell_other_processes(self, tell: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Every wake also calls ``tell`` (a message to the other processes of the bot)."""
        self._tell_others = tell

    def wake(self) -> None:
        """New work is committed: the loop runs a cycle as soon as it is free (calls coalesce)."""
        self._event.set()
        if self._tell_others is not None:
            task = asyncio.get_running_loop().create_task(self._tell_others())
            self._telling.add(task)
            task.add_done_callback(self._told)

    def woken_by_another_process(self) -> None:
        """Another process stored the work: wake this loop (and tell nobody else)."""
        self._event.set()

    def _told(self, task: asyncio.Task[None]) -> None:
        self._telling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The others announce it at their next interval anyway.
            log.warning("could not tell the other processes about new posts: %s", task.exception())

    def clear(self) -> None:
        """Called by the loop as a cycle starts: work stored from now on wakes it again."""
        self._event.clear()

    async def sleep(self, seconds: float) -> bool:
        """Until woken or ``seconds`` passed; True when woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
            return True
        return False
