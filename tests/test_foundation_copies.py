"""Safe copies: ``backup`` and ``export -o`` never write onto the live database, write through a
temporary file, and work with any characters in DATABASE_PATH (issue 16)."""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.storage.copies import LiveDatabaseDestination
from bot.storage.db import Database
from bot.storage.migrate import latest_version
from bot.storage.search import guild_stats
from tests.web_support import GUILD, add_comment, add_post, next_id

ROOT = Path(__file__).resolve().parents[1]
ODD_FOLDER = "data #1? 100% sure"  # each of these broke a hand-built file: URI
BIG_COMMENT = "word " * 40_000  # the export is well over FILE_SIZE_LIMIT
FILE_SIZE_LIMIT = 96 * 1024  # RLIMIT_FSIZE for the "disk full" runs: above SQLite's 32 KiB -shm


def seed(path: Path) -> dict[str, int]:
    """A database with two posts and their comments; returns its row counts."""

    async def write() -> None:
        database = await Database.open(path)
        try:
            first = await add_post(database, "https://blog.example.com/one/", "One", thread_id=next_id())
            second = await add_post(database, "https://blog.example.com/two/", "Two", thread_id=next_id())
            await add_comment(database, first, "First!", author_id=700, author_name="Ann")
            await add_comment(database, first, BIG_COMMENT, author_id=701, author_name="Ben", minutes=1)
            await add_comment(database, second, "Hello", author_id=700, author_name="Ann", minutes=2)
        finally:
            await database.close()

    asyncio.run(write())
    return row_counts(path)


def row_counts(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("posts", "comments", "threads")}
    finally:
        connection.close()


def run_cli(folder: Path, database: Path, *args: str,
            preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    env_file = folder / "test.env"
    # Quoted: unquoted, dotenv reads " #" as the start of a comment.
    env_file.write_text(f"DATABASE_PATH='{database}'\nLOG_LEVEL=WARNING\n", encoding="utf-8")
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", "--env-file", str(env_file), *args], cwd=folder,
                          env=environment, capture_output=True, text=True, timeout=60, preexec_fn=preexec)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if ".partial" in path.name)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, dict[str, int]]]:
    """A seeded database held open as the running bot would (so its -wal and -shm files exist)."""
    path = tmp_path / "conversation.db"
    counts = seed(path)
    reader = sqlite3.connect(path)
    reader.execute("SELECT count(*) FROM posts").fetchone()
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    yield path, counts
    reader.close()


def destination_for(kind: str, database: Path) -> Path:
    folder = database.parent
    if kind == "database":
        return database
    if kind in ("-wal", "-shm"):
        return Path(f"{database}{kind}")
    if kind == "relative path":
        return Path(os.path.relpath(database, folder)).parent / ".." / folder.name / database.name
    if kind == "symlink":
        link = folder / "link.db"
        link.symlink_to(database)
        return link
    if kind == "hard link":
        link = folder / "hard.db"
        os.link(database, link)
        return link
    if kind == "dangling symlink to -journal":  # no -journal exists in WAL mode: resolved paths tell
        link = folder / "journal-link"
        link.symlink_to(f"{database}-journal")
        return link
    raise AssertionError(kind)


KINDS = ["database", "-wal", "-shm", "relative path", "symlink", "hard link", "dangling symlink to -journal"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["backup", "export"])
def test_writing_onto_the_live_database_is_refused(live: tuple[Path, dict[str, int]], command: str,
                                                   kind: str) -> None:
    database, counts = live
    size = database.stat().st_size
    destination = destination_for(kind, database)
    args = ["backup", str(destination)] if command == "backup" else ["export", "-o", str(destination)]
    result = run_cli(database.parent, database, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(destination) in lines[0] and str(database) in lines[0] and "refusing" in lines[0]
    assert "Traceback" not in result.stderr
    assert database.stat().st_size == size
    assert row_counts(database) == counts
    assert leftovers(database.parent) == []


@pytest.mark.parametrize("command", ["backup", "export"])
def test_an_existing_destination_survives_a_failed_copy(live: tuple[Path, dict[str, int]], command: str) -> None:
    database, counts = live
    destination = database.parent / "copies" / "precious.out"
    destination.parent.mkdir()
    destination.write_bytes(b"the previous copy, still needed\n")

    def disk_full() -> None:  # writes past FILE_SIZE_LIMIT fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    assert database.stat().st_size > FILE_SIZE_LIMIT
    args = ["backup", str(destination)] if command == "backup" else ["export", "-o", str(destination)]
    result = run_cli(database.parent, database, *args, preexec=disk_full)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(destination) in lines[0] and "left as it was" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert destination.read_bytes() == b"the previous copy, still needed\n"
    assert leftovers(database.parent) == []
    assert row_counts(database) == counts

    # Without the limit the same command replaces the file with a complete copy.
    result = run_cli(database.parent, database, *args)
    assert result.returncode == 0, result.stderr
    if command == "backup":
        assert row_counts(destination) == counts
    else:
        assert BIG_COMMENT.strip() in destination.read_text(encoding="utf-8")
    assert leftovers(database.parent) == []


def test_an_odd_database_path_works_for_migrate_check_backup_and_stats(tmp_path: Path) -> None:
    folder = tmp_path / ODD_FOLDER
    database = folder / "conversation #2?.db"
    result = run_cli(tmp_path, database, "migrate")
    assert result.returncode == 0, result.stderr
    assert database.is_file()
    assert not (tmp_path / "data ").exists()  # nothing was cut off at '#' or '?'
    counts = seed(database)

    result = run_cli(tmp_path, database, "check")
    assert result.returncode == 0, result.stderr
    assert f"schema version {latest_version()}, up to date; integrity ok" in result.stdout and "2 posts, 3 comments" in result.stdout

    copy = folder / "backup 50% #3?.db"
    result = run_cli(tmp_path, database, "backup", str(copy))
    assert result.returncode == 0, result.stderr
    assert row_counts(copy) == counts

    async def stats() -> None:
        opened = await Database.open(database)
        try:
            summary = await guild_stats(opened, GUILD, datetime(2020, 1, 1, tzinfo=UTC))
        finally:
            await opened.close()
        assert (summary.posts, summary.comments, summary.participants) == (2, 3, 2)

    asyncio.run(stats())
    assert leftovers(tmp_path) == []


def test_the_backup_replaces_an_older_copy_and_keeps_no_wal(live: tuple[Path, dict[str, int]]) -> None:
    database, counts = live
    destination = database.parent / "nightly.db"
    destination.write_bytes(b"yesterday")
    result = run_cli(database.parent, database, "backup", str(destination))
    assert result.returncode == 0, result.stderr
    assert row_counts(destination) == counts
    connection = sqlite3.connect(destination)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        connection.close()
    assert sorted(path.name for path in database.parent.iterdir() if path.name.startswith("nightly")) == [
        "nightly.db"]


async def test_database_backup_onto_itself_is_refused_in_process(tmp_path: Path) -> None:
    path = tmp_path / "conversation.db"
    database = await Database.open(path)
    try:
        await add_post(database, "https://blog.example.com/one/", "One")
        for destination in (path, Path(f"{path}-wal"), tmp_path / "." / "conversation.db"):
            with pytest.raises(LiveDatabaseDestination, match="refusing to write"):
                await database.backup(destination)
        assert await database.fetch_value("SELECT count(*) FROM posts") == 1
    finally:
        await database.close()
    assert leftovers(tmp_path) == []
