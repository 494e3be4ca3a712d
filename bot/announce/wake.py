"""The announcement loop's wake-up: "posts were stored, announce them now".

Whatever stores posts with a ``queued`` announcement (a scheduled poll, ``/feed poll``, a push from a
hub, ``/feed retry``) calls :meth:`AnnounceWake.wake` once its write is committed; the announcement
loop runs a cycle at once instead of at its next interval. The per-channel rate
(``ANNOUNCEMENTS_PER_CYCLE`` per window, :mod:`bot.announce.plan`) still decides how many go out, so
frequent wakes cannot flood a channel. The bot object owns the one instance.
"""

from __future__ import annotations

import asyncio
import contextlib


class AnnounceWake:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        """New work is committed: the loop runs a cycle as soon as it is free (calls coalesce)."""
        self._event.set()

    def clear(self) -> None:
        """Called by the loop as a cycle starts: work stored from now on wakes it again."""
        self._event.clear()

    async def sleep(self, seconds: float) -> bool:
        """Until woken or ``seconds`` passed; True when woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
            return True
        return False
