"""Guards for the layering: the core never imports discord, and every cog loads without logging in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import ConversationBot, extension_names
from bot.config import Settings
from bot.storage import Database

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_DISCORD_IMPORTERS = {Path("bot/app.py")}


_IMPORT = re.compile(r"^\s*(?:import\s+([\w.]+(?:\s*,\s*[\w.]+)*)|from\s+([\w.]+)\s+import\b)", re.MULTILINE)


def imported_modules(path: Path) -> set[str]:
    # A line scan rather than ast.parse: CPython 3.11's AST recursion counter can be left corrupted
    # by a RecursionError caught elsewhere in the run, which then makes ast.parse fail spuriously.
    names: set[str] = set()
    for match in _IMPORT.finditer(path.read_text(encoding="utf-8")):
        if match.group(1):
            names.update(name.strip() for name in match.group(1).split(","))
        else:
            names.add(match.group(2))
    return names


def test_nothing_under_bot_but_the_bot_object_imports_discord() -> None:
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative in ALLOWED_DISCORD_IMPORTERS:
            continue
        if any(name == "discord" or name.startswith("discord.") for name in imported_modules(path)):
            offenders.append(str(relative))
    assert offenders == [], f"core modules importing discord: {offenders}"


def test_cogs_do_not_hold_sql() -> None:
    offenders = []
    for path in sorted((ROOT / "cogs").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "import sqlite3" in text or "import aiosqlite" in text or ".fetch_all(" in text or "SELECT " in text:
            offenders.append(path.name)
    assert offenders == [], f"SQL belongs in bot/storage, found in cogs: {offenders}"


async def test_every_extension_loads_without_logging_in(tmp_path: Path) -> None:
    names = extension_names()
    if not names:
        pytest.skip("no cogs yet")
    database = await Database.open(tmp_path / "conversation.db")
    bot = ConversationBot(Settings(discord_token="x" * 40), database)
    try:
        async with bot:  # initialises the client's loop state; no login, no gateway
            for name in names:
                await bot.load_extension(name)
            assert set(bot.extensions) == set(names)
            assert bot.tree.get_commands(), "the cogs register slash commands"
            bot.command_tree_hash()  # every command serialises, as a sync would need
    finally:
        await database.close()
