"""A small progress bar for long exports and imports, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 28
REDRAW_SECONDS = 0.1


class Progress:
    """``update(done)`` redraws at most ten times a second; ``close()`` ends the line.

    Quiet (draws nothing) when the stream is not a terminal, unless ``force`` is set, so logs and
    pipes never fill with carriage returns.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, force: bool = False,
                 unit: str = "") -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = force or (hasattr(self._stream, "isatty") and self._stream.isatty())
        self._last_draw = 0.0
        self._drawn = False

    def update(self, done: int) -> None:
        self.done = min(max(done, 0), self.total) if self.total else max(done, 0)
        now = time.monotonic()
        if self._enabled and (now - self._last_draw >= REDRAW_SECONDS or self.done == self.total):
            self._draw()
            self._last_draw = now

    def advance(self, step: int = 1) -> None:
        self.update(self.done + step)

    def close(self) -> None:
        if self._enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def render(self) -> str:
        if self.total:
            fraction = self.done / self.total
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            return f"{self.label} [{bar}] {fraction:4.0%} {_amount(self.done, self.unit)}/{_amount(self.total, self.unit)}"
        return f"{self.label} {_amount(self.done, self.unit)}"

    def _draw(self) -> None:
        self._stream.write("\r" + self.render())
        self._stream.flush()
        self._drawn = True


def _amount(value: int, unit: str) -> str:
    if unit == "B":
        for suffix, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value} B"
    return str(value)
