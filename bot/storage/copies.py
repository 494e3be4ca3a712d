"""Copies of the database and files the commands write: never in place, never onto the live database.

Every file is written to a temporary file in the destination's folder and moved over the
destination with ``os.replace`` once complete, so an existing file stays as it was until the new one
is whole, and a failure leaves neither a partial file nor the temporary one behind. A destination
that is the live database, one of SQLite's files beside it (``-wal``, ``-shm``, ``-journal``), or a
link to any of them is refused before anything is opened: a backup onto the database itself would
empty it.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BACKUP_PAGES_PER_STEP = 256  # writers wait only between steps of this many pages
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class UnusablePath(Exception):
    """A path from the command line or the settings cannot be used; the message says why (one line)."""


class LiveDatabaseDestination(UnusablePath):
    """The destination is the live database or one of its files."""


def database_files(database_path: Path) -> list[Path]:
    """The database file and the files SQLite keeps beside it, as named and with links resolved
    (SQLite names its ``-wal`` after the resolved file)."""
    files: list[Path] = []
    for base in (database_path, _resolved(database_path)):
        files.extend(base.with_name(base.name + suffix) for suffix in ("", *_SQLITE_SIDE_FILES))
    return files


def refuse_live_database(destination: Path, database_path: Path, *, command: str) -> None:
    """Raise :class:`LiveDatabaseDestination` when writing ``destination`` would write the live database.

    Both an existing file (``os.path.samefile``: hard links too) and a path that does not exist yet
    but resolves to one of the database's files (a dangling link to its ``-wal``) are refused.
    """
    target = _resolved(destination)
    for live in database_files(database_path):
        if target == _resolved(live) or _same_file(destination, live):
            raise LiveDatabaseDestination(
                f"{command}: refusing to write to {destination}: it is the live database {database_path}"
                f"{'' if live.name == database_path.name else f' (its file {live.name})'}; choose another path")


def ensure_folder(folder: Path, *, name: str) -> None:
    """Create ``folder`` when missing; :class:`UnusablePath` (naming ``name``) when it cannot be
    created or written into."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnusablePath(f"{name}: cannot create the folder {folder} ({_reason(error)}); "
                           "expected a folder that exists or can be created") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UnusablePath(f"{name}: the folder {folder} is not writable; expected a folder this user can write to")


@contextmanager
def replacing(destination: Path) -> Iterator[Path]:
    """A new empty file beside ``destination`` to write; it replaces ``destination`` when the block
    ends without an error, and is removed (with any SQLite files beside it) when it does not."""
    temporary = _new_temporary(destination)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, destination)
    except BaseException:
        for leftover in (temporary, *(temporary.with_name(temporary.name + s) for s in _SQLITE_SIDE_FILES)):
            leftover.unlink(missing_ok=True)
        raise
    _sync_folder(destination.parent)


def check_destination(destination: Path, *, database_path: Path, command: str) -> None:
    """Everything that can be said about ``destination`` before writing it: not the live database,
    not a folder, and in a folder that exists (or is created) and is writable."""
    refuse_live_database(destination, database_path, command=command)
    if destination.is_dir():
        raise UnusablePath(f"{command}: {destination} is a folder; expected the path of a file to write")
    ensure_folder(destination.parent, name=command)


def write_text(destination: Path, text: str, *, command: str, database_path: Path) -> None:
    """Write ``text`` (UTF-8) to ``destination`` through a temporary file, never onto the database."""
    check_destination(destination, database_path=database_path, command=command)
    with replacing(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")


def backup_database(source: Path, destination: Path, *, command: str = "backup") -> None:
    """Copy ``source`` to ``destination`` with SQLite's online backup API, in steps so writers go on
    between them; the copy is a self-contained database (rollback journal, no WAL)."""
    check_destination(destination, database_path=source, command=command)
    with replacing(destination) as temporary:
        # sqlite3.connect's default timeout (5 s) is the busy timeout the bot uses everywhere.
        from_connection = sqlite3.connect(str(source))
        try:
            to_connection = sqlite3.connect(str(temporary))
            try:
                from_connection.backup(to_connection, pages=BACKUP_PAGES_PER_STEP)
                to_connection.execute("PRAGMA journal_mode = DELETE")
            finally:
                to_connection.close()
        finally:
            from_connection.close()


def _new_temporary(destination: Path) -> Path:
    # Created here (exclusively, with the umask's permissions) so no two writers share one.
    while True:
        temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.partial")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is no reason to fail."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a loop of links: compare the absolute path instead
        return Path(os.path.abspath(path))


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # either does not exist
        return False


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
