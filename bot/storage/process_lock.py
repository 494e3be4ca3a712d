"""One process per SQLite database: an exclusive lock on ``<database>.lock`` held while the bot runs.

SQLite lets several processes open one file, but two bots on one database would each connect to
Discord and each announce. The lock is the operating system's (``flock`` on Linux and macOS, a
byte-range lock through ``msvcrt`` on Windows): it goes with the process, also when the process is
killed, so a stale lock file never blocks a restart. The file itself is left in place (removing it
would race with a process that just opened it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from bot.storage.copies import UnusablePath

LOCK_SUFFIX = ".lock"


class DatabaseInUse(Exception):
    """Another process holds the database's lock."""

    def __init__(self, database: Path, lock_file: Path) -> None:
        super().__init__(
            f"DATABASE_PATH: {database} is in use by another conversation-engine process (it holds "
            f"{lock_file}); SQLite allows one bot process per database: stop the other one first, or "
            "give this one its own DATABASE_PATH")
        self.database = database
        self.lock_file = lock_file


def lock_file_for(database: Path) -> Path:
    return database.with_name(database.name + LOCK_SUFFIX)


class ProcessLock:
    """The held lock of one database; :meth:`release` (or the process's end) lets it go."""

    def __init__(self, handle: IO[bytes], path: Path) -> None:
        self._handle = handle
        self.path = path

    @classmethod
    def acquire(cls, database: Path) -> ProcessLock:
        """Take the lock of ``database`` without waiting; :class:`DatabaseInUse` when it is held."""
        path = lock_file_for(database)
        try:
            handle = open(path, "a+b")  # held open for the process's life; release() closes it
        except OSError as error:
            raise UnusablePath(f"DATABASE_PATH: cannot open the lock file {path} ({error.strerror or error}); "
                               "expected a file this user can create and write beside the database") from None
        try:
            _lock(handle)
        except OSError:
            handle.close()
            raise DatabaseInUse(database, path) from None
        return cls(handle, path)

    def release(self) -> None:
        if self._handle.closed:
            return
        try:
            _unlock(self._handle)
        finally:
            self._handle.close()


if sys.platform == "win32":
    import msvcrt

    def _lock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # a byte past the end may be locked

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

