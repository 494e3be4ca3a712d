"""The real process: ``python -m bot run`` against the Discord emulator, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp

from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.web_support import free_port

ROOT = Path(__file__).resolve().parents[1]


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


async def read_lines_until(stream: asyncio.StreamReader, wanted: int, needle: str) -> list[str]:
    """Lines of ``stream`` until ``wanted`` of them contain ``needle`` (or the stream ends)."""
    lines: list[str] = []
    while sum(needle in line for line in lines) < wanted:
        line = await stream.readline()
        if not line:
            break
        lines.append(line.decode())
    return lines


async def test_discord_unreachable_at_start_is_one_line_then_retries_until_stopped(tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there: connections are refused
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB",
        "DISCORD_API_BASE": f"http://127.0.0.1:{closed_port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{closed_port}/",
        "DATABASE_PATH": str(tmp_path / "conversation.db"),
    }
    for signum in (signal.SIGTERM, signal.SIGINT):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert process.stderr is not None
            lines = await asyncio.wait_for(read_lines_until(process.stderr, 2, "cannot reach Discord"), 30)
        finally:
            process.send_signal(signum)
            _, rest = await asyncio.wait_for(process.communicate(), 10)  # promptly, in the middle of a wait
        log = "".join(lines) + rest.decode()
        failures = [line for line in log.splitlines() if "cannot reach Discord" in line]
        assert len(failures) >= 2, log
        assert f"127.0.0.1:{closed_port} (DISCORD_API_BASE): connection refused" in failures[0]
        assert "trying again in 1 s" in failures[0] and "trying again in 2 s" in failures[1]
        assert "Traceback" not in log
        assert process.returncode == 0, log
        assert "stopped cleanly" in log


async def test_sync_commands_gives_up_when_discord_is_unreachable(tmp_path: Path) -> None:
    closed_port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB",
        "DISCORD_API_BASE": f"http://127.0.0.1:{closed_port}/api/v10",
        "DATABASE_PATH": str(tmp_path / "conversation.db"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sync-commands", cwd=tmp_path, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1, stderr.decode()
    assert "cannot reach Discord" in lines[0] and "connection refused" in lines[0]


async def test_an_unreachable_gateway_is_reported_by_name(emulator: FakeDiscord, tmp_path: Path) -> None:
    closed_port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": emulator.token,
        "DISCORD_API_BASE": emulator.api_base,
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{closed_port}/",
        "DATABASE_PATH": str(tmp_path / "conversation.db"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stderr is not None
        lines = await asyncio.wait_for(read_lines_until(process.stderr, 1, "cannot reach Discord"), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 10)
    log = "".join(lines) + rest.decode()
    assert f"127.0.0.1:{closed_port} (DISCORD_GATEWAY_URL): connection refused" in log
    assert "Traceback" not in log and process.returncode == 0, log
    assert emulator.token not in log
