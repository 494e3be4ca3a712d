"""SQLite allows one bot process per database: a second ``run`` on the same file refuses to start
(exit 2, one line naming the file); the lock goes with the process, even a killed one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.storage.process_lock import DatabaseInUse, ProcessLock, lock_file_for
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.test_foundation_run import free_port, start_bot_process


def test_the_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    database = tmp_path / "conversation.db"
    held = ProcessLock.acquire(database)
    try:
        with pytest.raises(DatabaseInUse) as refused:
            ProcessLock.acquire(database)
        assert str(database) in str(refused.value) and "DATABASE_PATH" in str(refused.value)
    finally:
        held.release()
    ProcessLock.acquire(database).release()
    assert lock_file_for(database) == tmp_path / "conversation.db.lock"


async def test_a_second_process_on_the_same_database_refuses_to_start(emulator: FakeDiscord, world: World,
                                                                      tmp_path: Path) -> None:
    database = tmp_path / "conversation.db"
    first = await start_bot_process(emulator, database, free_port())
    try:
        await emulator.wait_until(lambda: emulator.connected, timeout=30)
        second = await start_bot_process(emulator, database, free_port())
        _, stderr = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 2, stderr.decode()
        lines = stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert str(database) in lines[0] and "another conversation-engine process" in lines[0]
        assert "Traceback" not in lines[0]
        assert emulator.gateway.identify_count == 1  # the second never reached Discord
        assert first.returncode is None  # and the first runs on
    finally:
        if sys.platform == "win32":
            first.kill()
        else:
            first.send_signal(signal.SIGKILL)  # no clean exit: the operating system lets the lock go
        await asyncio.wait_for(first.wait(), 30)
    ProcessLock.acquire(database).release()


def test_the_lock_file_is_beside_the_database_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "data" / "conversation.db"
    database.parent.mkdir()
    ProcessLock.acquire(database).release()
    assert lock_file_for(database).is_file() and os.listdir(database.parent) == ["conversation.db.lock"]
