"""Background loops that never die unobserved: a ``tasks.loop`` whose task ends with an exception
(one its body let out, or one of its ``before_loop``, which discord.py does not even report) is
logged with its traceback and started again."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from discord.ext import tasks

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 5.0


class Supervised:
    """Starts ``loop`` (a cog's bound ``tasks.loop``) and restarts it ``restart_delay`` seconds after
    it died; :meth:`stop` (from ``cog_unload``) ends it for good."""

    def __init__(self, loop: tasks.Loop[Any], *, restart_delay: float = RESTART_DELAY_SECONDS) -> None:
        self.loop = loop
        self.restart_delay = restart_delay
        self.restarts = 0
        self._stopped = True
        self._pending_restart: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return str(getattr(self.loop.coro, "__qualname__", self.loop.coro))

    def start(self) -> None:
        self._stopped = False
        self.loop.start().add_done_callback(self._ended)

    def stop(self) -> None:
        self._stopped = True
        if self._pending_restart is not None:
            self._pending_restart.cancel()
            self._pending_restart = None
        self.loop.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopped or task.cancelled():
            return
        error = task.exception()  # retrieving it also keeps asyncio's "never retrieved" warning away
        if error is None:
            return  # stopped on purpose (loop.stop())
        log.error("background task %s died; restarting it in %.0f s", self.name, self.restart_delay,
                  exc_info=error)
        self._pending_restart = asyncio.get_running_loop().call_later(self.restart_delay, self._restart)

    def _restart(self) -> None:
        self._pending_restart = None
        if self._stopped or self.loop.is_running():
            return
        self.restarts += 1
        self.start()
