"""When an announcement that met a passing problem (Discord down, a timeout) is tried again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff: ``first`` after the first failure, doubling up to ``longest``; the
    announcement fails for good once it has been failing for ``give_up_after`` (a day by default,
    so a Discord outage of hours loses nothing)."""

    first: timedelta = timedelta(minutes=1)
    longest: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, failures: int) -> timedelta:
        """How long to wait after the ``failures``-th failure in a row (1 = the first)."""
        doublings = min(max(failures - 1, 0), 40)  # 2**40 minutes is far beyond any ``longest``
        delay: timedelta = self.first * (2 ** doublings)
        return min(delay, self.longest)


DEFAULT_RETRY_SCHEDULE = RetrySchedule()
