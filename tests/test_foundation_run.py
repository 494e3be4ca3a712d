"""The real process: ``python -m bot run`` against the Discord emulator, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp

from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_bot_process(emulator: FakeDiscord, database: Path, web_port: int) -> asyncio.subprocess.Process:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": emulator.token,
        "DISCORD_API_BASE": emulator.api_base,
        "DISCORD_GATEWAY_URL": emulator.gateway_url,
        "DATABASE_PATH": str(database),
        "WEB_PORT": str(web_port),
        "LOG_LEVEL": "INFO",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=database.parent, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def health(port: int) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        data: dict[str, object] = await response.json()
        return data


async def run_once(emulator: FakeDiscord, database: Path) -> tuple[int, str]:
    port = free_port()
    process = await start_bot_process(emulator, database, port)
    try:
        await emulator.wait_until(lambda: emulator.connected, timeout=30)
        status: dict[str, object] = {}
        for _ in range(200):  # the gateway is up; READY and the guild take a moment more
            try:
                status = await health(port)
            except aiohttp.ClientError:
                status = {}
            discord_status = status.get("discord")
            if isinstance(discord_status, dict) and discord_status.get("connected"):
                break
            await asyncio.sleep(0.05)
        assert isinstance(status.get("discord"), dict) and status["discord"]["connected"] is True, status
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode if process.returncode is not None else -1, stderr.decode()


async def test_run_connects_serves_health_and_stops_cleanly_on_sigterm(emulator: FakeDiscord, world: World,
                                                                     tmp_path: Path) -> None:
    database = tmp_path / "conversation.db"
    code, log = await run_once(emulator, database)
    assert code == 0, log
    assert "stopped cleanly" in log
    assert emulator.token not in log
    assert emulator.command_syncs == 1
    connection = sqlite3.connect(database)
    try:
        stored_hash = connection.execute("SELECT value FROM meta WHERE key = 'command_tree_hash'").fetchone()
        assert stored_hash is not None
    finally:
        connection.close()

    # A restart with the same commands does not register them again (no command rate limits).
    code, log = await run_once(emulator, database)
    assert code == 0, log
    assert emulator.command_syncs == 1
    assert "unchanged since the last sync" in log
