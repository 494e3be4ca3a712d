"""Read-only connections to the database file, whatever characters its path holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def read_only_uri(path: Path) -> str:
    """A ``file:`` URI opening ``path`` read-only. ``as_uri`` percent-escapes ``#``, ``?``, ``%`` and
    spaces, which SQLite would otherwise read as the URI's fragment, query or escapes."""
    return f"{path.resolve().as_uri()}?mode=ro"


def connect_read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    return sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=check_same_thread)
