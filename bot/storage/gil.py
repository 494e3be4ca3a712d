"""Handing the GIL to the database writer thread while the event loop is busy.

A busy event loop gives the GIL up at every select() and takes it straight back, so the writer
thread, which needs it again after every SQLite call, can wait tens of milliseconds each time
(CPython's GIL convoy), and while it waits every select() of the loop wakes it in vain, which slows
the loop down too. So while the writer has work, the loop looks every HAND_OVER_EVERY: when the
writer thread's CPU clock stood still since the last look (it is not inside SQLite, so it is most
likely waiting for the GIL), the loop sleeps briefly, which hands the GIL over. Measured with
bench/ingest.py: the writer's wait per SQLite call fell from about 1.2 ms (a look every
millisecond, deciding by its progress alone) to about 0.45 ms.
"""

from __future__ import annotations

import threading
import time

HAND_OVER_EVERY = 0.00025
HAND_OVER_SLEEP = 0.0001
# A hand-over the writer thread used shows on its clock (at least HAND_OVER_RAN of CPU); after
# FRUITLESS_HAND_OVERS unused ones in a row it is most likely blocked on something else than the
# GIL (a lock held by another process, the disk), and until the thread moves again the loop hands
# the GIL over only every HAND_OVER_BACKOFF (a thread slow to wake up still gets it soon).
HAND_OVER_RAN = 0.000001
FRUITLESS_HAND_OVERS = 2
HAND_OVER_BACKOFF = 0.004
# Where a thread's CPU clock cannot be read (Windows, macOS), the loop decides by the writer's
# progress alone, and looks less often: it cannot tell a writer busy inside SQLite from a stuck one.
# It backs off after fruitless hand-overs all the same.
HAND_OVER_EVERY_BLIND = 0.001


class GilHandOver:
    """The writer thread calls ``writer_started``/``writer_finished`` and bumps ``progress`` at each
    step of its work; the loop calls ``look`` every ``interval`` while the writer has work."""

    def __init__(self) -> None:
        self.progress = 0
        self._progress_seen = -1
        self._clock: int | None = None  # the writer thread's CPU clock, where readable
        self._cpu_seen = 0.0
        self._fruitless = 0
        self._last_sleep = 0.0
        self.sleeps = 0  # how often the loop slept to hand the GIL over (for benchmarks and tests)

    # -- the writer thread --------------------------------------------------------------------------

    def writer_started(self) -> None:
        try:
            self._clock = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):  # not on this platform: the loop decides by progress alone
            self._clock = None

    def writer_finished(self) -> None:
        self._clock = None  # the clock of a finished thread must not be read

    # -- the event loop -----------------------------------------------------------------------------

    @property
    def reads_the_writer_clock(self) -> bool:
        return self._clock is not None

    @property
    def interval(self) -> float:
        return HAND_OVER_EVERY if self._clock is not None else HAND_OVER_EVERY_BLIND

    def restart(self) -> None:
        """A new stretch of work: the writer is about to wake up and will want the GIL."""
        self._fruitless = 0

    def look(self) -> None:
        moved = self.progress != self._progress_seen
        stuck = not moved
        clock = self._clock
        cpu = 0.0
        if clock is not None:
            cpu = time.clock_gettime(clock)
            used = cpu - self._cpu_seen
            # Waiting for the GIL costs the thread a little CPU too (every wake-up in vain).
            stuck = stuck and used < HAND_OVER_EVERY / 2
            moved = moved or used >= HAND_OVER_RAN
            self._cpu_seen = cpu
        if moved:
            self._fruitless = 0
        now = time.monotonic()
        if stuck and (self._fruitless < FRUITLESS_HAND_OVERS or now - self._last_sleep >= HAND_OVER_BACKOFF):
            progress = self.progress
            time.sleep(HAND_OVER_SLEEP)  # deliberately blocking: this is what hands the GIL over
            self._last_sleep = now
            self.sleeps += 1
            # A writer waiting for the GIL took it and ran; one blocked elsewhere did not. Without a
            # thread clock only its progress tells, so it backs off the same way on every platform.
            ran = self.progress != progress
            clock = self._clock  # read again: the thread may have ended meanwhile
            if clock is not None:  # what it ran with the GIL just handed over is not news
                after = time.clock_gettime(clock)
                ran = ran or after - cpu >= HAND_OVER_RAN
                self._cpu_seen = after
            self._fruitless = 0 if ran else self._fruitless + 1
        self._progress_seen = self.progress
