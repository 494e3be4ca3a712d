"""Guards for the layering, bottom up: records (bot/model) and storage (bot/storage) import nothing
above them; the core never imports discord; the bot object never imports the cogs; cogs reach
storage through the core services except for a few plain reads; every cog loads without logging in."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from bot.app import ConversationBot
from bot.config import Settings
from bot.storage import Database
from cogs import extension_names

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_DISCORD_IMPORTERS = {Path("bot/app.py")}
# The entry point puts the bot object and the cogs together; nothing else under bot/ knows the cogs.
ALLOWED_COG_IMPORTERS = {Path("bot/__main__.py")}
# What cogs may import from bot/storage: record types and reads a service would only forward.
# Everything else (every write above all) goes through bot.announce, bot.discussions, bot.feeds or
# bot.lookup.
COG_STORAGE_IMPORTS = {
    "bot.storage.announcements": {"failed_announcements"},
    "bot.storage.comments": {"announce_channel_ids", "is_opted_out", "live_threads", "stored_comment_count"},
    "bot.storage.feeds": {"Feed", "get_feed", "list_feeds", "pending_feed_notices"},
    "bot.storage.search": {"comment_page", "guild_stats", "latest_posts", "post_details"},
}


_IMPORT = re.compile(r"^\s*(?:import\s+([\w.]+(?:\s*,\s*[\w.]+)*)|from\s+([\w.]+)\s+import\b)", re.MULTILINE)


_FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(\([^)]*\)|[^\n]+)", re.MULTILINE)


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


def imported_names(path: Path) -> set[tuple[str, str]]:
    """``(module, name)`` for every ``from module import name`` of the file."""
    pairs: set[tuple[str, str]] = set()
    for match in _FROM_IMPORT.finditer(path.read_text(encoding="utf-8")):
        for item in match.group(2).strip("()").split(","):
            name = item.split("#")[0].strip().split(" as ")[0].strip()
            if name:
                pairs.add((match.group(1), name))
    return pairs


def project_imports(path: Path) -> set[str]:
    return {name for name in imported_modules(path) if name.split(".")[0] in ("bot", "cogs", "tests")}


def modules_under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_records_import_nothing_of_the_project() -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(name for name in project_imports(path)
                                                     if not name.startswith("bot.model"))
                 for path in modules_under("bot/model")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_storage_is_the_bottom_layer() -> None:
    """Storage imports only itself and the records: no feature, no web, no bot object, no cogs."""
    offenders = {str(path.relative_to(ROOT)): sorted(
        name for name in project_imports(path) if not name.startswith(("bot.storage", "bot.model")))
        for path in modules_under("bot/storage")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_bot_object_does_not_import_the_cogs() -> None:
    """The cogs import bot.app; bot.app (and the core under it) must not import them back."""
    offenders = [str(path.relative_to(ROOT)) for path in modules_under("bot")
                 if path.relative_to(ROOT) not in ALLOWED_COG_IMPORTERS
                 and any(name == "cogs" or name.startswith("cogs.") for name in imported_modules(path))]
    assert offenders == [], f"modules under bot/ importing cogs: {offenders}"
    # Finding the extensions needs nothing of the bot either.
    assert project_imports(ROOT / "cogs" / "__init__.py") == set()


def test_cogs_reach_storage_only_through_services_or_allowed_reads() -> None:
    offenders = []
    for path in sorted((ROOT / "cogs").glob("*.py")):
        whole_modules = {name for name in imported_modules(path)
                         if name == "bot.storage" or name.startswith("bot.storage.")}
        for module, name in imported_names(path):
            if module == "bot.storage" or module.startswith("bot.storage."):
                whole_modules.discard(module)
                if name not in COG_STORAGE_IMPORTS.get(module, set()):
                    offenders.append(f"{path.name}: {module}.{name}")
        offenders.extend(f"{path.name}: import {module}" for module in sorted(whole_modules))
        text = path.read_text(encoding="utf-8")
        if ".database.write(" in text or ".enqueue(" in text:
            offenders.append(f"{path.name}: writes to the database itself")
    assert offenders == [], f"cogs calling storage directly (use a service, or allow a plain read): {offenders}"


def test_the_storage_reads_cogs_may_call_are_reads() -> None:
    for module_name, names in COG_STORAGE_IMPORTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            value = getattr(module, name)
            if inspect.isclass(value):
                continue
            source = inspect.getsource(value)
            assert ".write(" not in source and "WriteOp" not in source and "enqueue" not in source, (
                f"{module_name}.{name} writes; cogs must reach it through a service")


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
    bot = ConversationBot(Settings(discord_token="x" * 40), database, extensions=names)
    try:
        async with bot:  # initialises the client's loop state; no login, no gateway
            for name in names:
                await bot.load_extension(name)
            assert set(bot.extensions) == set(names)
            assert bot.tree.get_commands(), "the cogs register slash commands"
            bot.command_tree_hash()  # every command serialises, as a sync would need
    finally:
        await database.close()
