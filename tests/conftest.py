"""Suite-wide checks (loopback-only sockets, Discord's OpenAPI spec for every emulator exchange), the
shared ``database`` fixture, a real PostgreSQL server (``postgresql_url``: a fresh database per test),
and the one way tests run our bot: :func:`running_bot`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

# Imported here, at a shallow stack, on purpose: hypothesis's pytest plugin otherwise imports it late
# (in the terminal summary), and CPython 3.11.7's AST recursion check can fail spuriously there
# ("AST constructor recursion depth mismatch") after discord.py and the cogs were imported.
import hypothesis  # noqa: F401
import pytest

from bot.__main__ import open_database
from bot.app import ConversationBot, SyncMode
from bot.config import Settings, Tuning
from bot.storage import Database
from bot.storage.postgres_engine import open_postgresql
from cogs import extension_names
from tests.fakediscord import FakeDiscord
from tests.postgres_server import PostgreSQLServer, postgresql_binaries, temporary_postgresql_server

pytest_plugins = ["tests.fakediscord.harness", "tests.fakediscord.checks"]

DATABASE_NAME = "conversation.db"

# Only the start-up announcement cycle runs on its own (tests run more with ``announce_now()``); the
# per-channel budget is per cycle only, so cycles can run back to back; no pause before a re-IDENTIFY.
TEST_TUNING = Tuning(announce_interval_seconds=3600.0, announce_flood_window_seconds=0.0,
                     reidentify_pause_seconds=0.0)


def bot_settings(emu: FakeDiscord, folder: Path, *, tuning: Tuning = TEST_TUNING, **overrides: Any) -> Settings:
    """Settings for our bot against ``emu``, its database in ``folder`` (the ``database`` fixture's file
    when ``folder`` is ``tmp_path``)."""
    values: dict[str, Any] = {"discord_token": emu.token, "database_path": folder / DATABASE_NAME,
                              "database_url": _postgresql_by_folder.get(folder),
                              "discord_api_base": emu.api_base, "discord_gateway_url": emu.gateway_url}
    values.update(overrides)
    return Settings(tuning=tuning, **values)


# The PostgreSQL database of a test running on PostgreSQL, by its tmp_path: bot_settings finds it.
_postgresql_by_folder: dict[Path, str] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The storage contract: in a module marked ``BOTH_ENGINES`` every test runs on SQLite and again
    on PostgreSQL (its ``database`` fixture and the bots it runs)."""
    if metafunc.definition.get_closest_marker("both_engines") and "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


BOTH_ENGINES = [pytest.mark.both_engines, pytest.mark.usefixtures("engine")]


@pytest.fixture
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The test's database engine: "sqlite", or in a ``BOTH_ENGINES`` module's second run
    "postgresql", with a fresh database of its own that ``database`` and ``bot_settings`` use."""
    name = str(getattr(request, "param", "sqlite"))
    if name != "postgresql":
        yield name
        return
    async with fresh_postgresql_database(request.getfixturevalue("postgresql_server")) as url:
        _postgresql_by_folder[tmp_path] = url
        try:
            yield name
        finally:
            _postgresql_by_folder.pop(tmp_path, None)


@pytest.fixture
async def database(engine: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The test's database, closed after it: the SQLite file on ``tmp_path``, or the test's
    PostgreSQL database (see ``engine``). A bot run with ``bot_settings(emu, tmp_path)`` opens the same."""
    url = _postgresql_by_folder.get(tmp_path)
    db = await open_postgresql(url) if url else await Database.open(tmp_path / DATABASE_NAME)
    try:
        yield db
    finally:
        await db.close()


class BotLog(logging.Handler):
    """What the cogs logged (DEBUG and up) while a bot ran: tests wait for a line instead of a counter."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, text: str) -> int:
        return sum(text in record.getMessage() for record in self.records)

    async def wait_for(self, text: str, *, count: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until ``count`` lines containing ``text`` were logged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count(text) < count:
            if loop.time() > deadline:
                raise AssertionError(f"the bot did not log {text!r} {count} time(s) within {timeout}s")
            await asyncio.sleep(0.01)


_bot_logs: weakref.WeakKeyDictionary[ConversationBot, BotLog] = weakref.WeakKeyDictionary()


def bot_log(bot: ConversationBot) -> BotLog:
    """The log lines of a bot started by :func:`running_bot`."""
    return _bot_logs[bot]


@contextlib.asynccontextmanager
async def running_bot(emu: FakeDiscord, settings: Settings, *, sync_mode: SyncMode = "auto",
                      configure: Callable[[ConversationBot], None] | None = None
                      ) -> AsyncIterator[ConversationBot]:
    """Our bot (every cog loaded) logged in to ``emu`` with ``settings``, once it is ready.

    It opens its own database on ``settings.database_path``; on exit the bot is stopped (loops
    cancelled, gateway closed) and the database closed, as a process exit would. ``configure``
    adjusts the bot before it logs in (what the developer portal grants, say)."""
    from tests.fakediscord.harness import run_client  # a pytest plugin: imported once pytest loaded it

    database = await open_database(settings)
    bot = ConversationBot(settings, database, extensions=extension_names(), sync_mode=sync_mode,
                          guild_ready_timeout=0.05)
    if configure is not None:
        configure(bot)
    log = BotLog()
    _bot_logs[bot] = log
    cogs_logger = logging.getLogger("cogs")
    level = cogs_logger.level
    cogs_logger.setLevel(logging.DEBUG)
    cogs_logger.addHandler(log)
    try:
        async with run_client(emu, bot, token=settings.discord_token):
            yield bot
    finally:
        cogs_logger.removeHandler(log)
        cogs_logger.setLevel(level)
        await database.close()


async def settled(bot: ConversationBot) -> None:
    """Until the bot's start-up catch-up and first reconcile are over: rows a test adds to the
    database afterwards are not compared with Discord (where a made-up thread does not exist)."""
    await bot_log(bot).wait_for("catch-up of")
    await bot_log(bot).wait_for("reconcile of")




@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgreSQLServer]:
    """A PostgreSQL server for the session (tests/postgres_server.py).

    Without the server binaries the tests that need it skip, except under CI (the CI variable set),
    where they fail: CI installs PostgreSQL, so its absence there is a broken set-up, not a choice."""
    binaries = postgresql_binaries()
    if binaries is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                  "install the Debian package postgresql to run the PostgreSQL tests")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    with temporary_postgresql_server(binaries) as server:
        yield server


_database_numbers = itertools.count(1)


@contextlib.asynccontextmanager
async def fresh_postgresql_database(server: PostgreSQLServer) -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database on ``server``, dropped afterwards."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.url(name)
    finally:
        admin = await asyncpg.connect(server.url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgresql_url(postgresql_server: PostgreSQLServer) -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database of its own for the test, dropped after it."""
    async with fresh_postgresql_database(postgresql_server) as url:
        yield url
