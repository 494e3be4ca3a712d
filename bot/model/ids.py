"""Ids that come from users (command options, URLs, text) on their way to SQL.

SQLite integers are 64-bit: a bigger Python int raises OverflowError when bound, so an id a user
typed is parsed here, once, and one that cannot exist is simply "no such id".
"""

from __future__ import annotations

MAX_SQLITE_INTEGER = 2**63 - 1
_MAX_DIGITS = len(str(MAX_SQLITE_INTEGER))


def parse_id(text: str) -> int | None:
    """The positive id ``text`` spells in ASCII digits, or None (not a number, or one no row can have)."""
    text = text.strip()
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if fits_sqlite(value) and value > 0 else None


def fits_sqlite(value: int) -> bool:
    """Whether SQLite can store ``value`` (a bigger one could never match a stored id)."""
    return -MAX_SQLITE_INTEGER - 1 <= value <= MAX_SQLITE_INTEGER
