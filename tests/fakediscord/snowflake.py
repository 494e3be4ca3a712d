"""Real, timestamp-based Discord snowflakes (so creation-time ordering works)."""

from __future__ import annotations

import datetime
import itertools
import threading
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeFactory:
    """Monotonic snowflakes: ``(ms since the Discord epoch) << 22 | worker << 17 | increment``."""

    def __init__(self, worker: int = 1) -> None:
        self._worker = worker & 0x1F
        self._lock = threading.Lock()
        self._last: dict[int, int] = {}  # per backdating offset: ids made "in the past" stay ordered too
        self._counter = itertools.count()
        self.backdate_ms = 0  # new ids are made as if this many milliseconds ago

    def now(self) -> datetime.datetime:
        """The emulator's present: the real one, less the backdating."""
        return datetime.datetime.now(datetime.UTC) - datetime.timedelta(milliseconds=self.backdate_ms)

    def next(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS - self.backdate_ms
            candidate = (ms << 22) | (self._worker << 17) | (next(self._counter) & 0xFFF)
            last = self._last.get(self.backdate_ms, 0)
            if candidate <= last:
                candidate = last + 1
            self._last[self.backdate_ms] = candidate
            return candidate


def snowflake_time(snowflake: int) -> datetime.datetime:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def iso(when: datetime.datetime | None = None) -> str:
    when = when or datetime.datetime.now(datetime.UTC)
    return when.isoformat()
