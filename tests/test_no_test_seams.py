"""No test seams in production: tests tune the bot through ``Settings.tuning`` and observe what it does;
the bot never looks up attributes tests may have set on it, and tests never set any."""

from __future__ import annotations

import ast
import re
from dataclasses import fields, replace
from pathlib import Path

from bot.config import Settings, Tuning, load_settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789"
# discord.py's own hooks, overridden by subclassing: not seams.
DISCORD_HOOKS = {"setup_hook", "before_identify_hook"}
ATTRIBUTE_LOOKUPS = {"getattr", "hasattr", "setattr"}
ASSIGNED_TO_BOT = re.compile(r"\bbot\w*(\.\w+)+\s*=[^=].*#\s*type:\s*ignore\[[^\]]*attr-defined")


def _is_the_bot(node: ast.expr) -> bool:
    """``bot``, ``self.bot``, ``interaction.client``-like names ending in ``bot``."""
    if isinstance(node, ast.Name):
        return node.id == "bot"
    return isinstance(node, ast.Attribute) and node.attr == "bot"


def production_seams(source: str, where: str = "<source>") -> list[str]:
    """Lookups of bot attributes by name (``getattr(bot, "x_hook", None)``) and ``*_hook`` knobs."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_LOOKUPS
                and len(node.args) >= 2 and _is_the_bot(node.args[0])
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            found.append(f"{where}:{node.lineno}: {node.func.id}(bot, {node.args[1].value!r}): put the knob in "
                         "Settings.tuning")
        names: list[tuple[str, int]] = []
        if isinstance(node, ast.Attribute):
            names.append((node.attr, node.lineno))
        elif isinstance(node, ast.arg):
            names.append((node.arg, node.lineno))
        elif isinstance(node, ast.keyword) and node.arg is not None:
            names.append((node.arg, node.lineno))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.append((node.name, node.lineno))
        for name, line in names:
            if name.endswith("_hook") and name not in DISCORD_HOOKS:
                found.append(f"{where}:{line}: {name}: tests observe behaviour, they do not hook into the bot")
    return found


def test_bot_and_cogs_have_no_test_seams() -> None:
    found: list[str] = []
    for folder in ("bot", "cogs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += production_seams(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []


def test_tests_set_no_attributes_on_the_bot() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for folder in ("tests", "bench") for path in sorted((ROOT / folder).rglob("*.py"))
             if path.name != Path(__file__).name
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if ASSIGNED_TO_BOT.search(line)]
    assert found == [], "tune the bot with Settings(tuning=...) instead"


def test_the_guards_see_a_seam() -> None:
    seams = production_seams(
        'def cog(bot):\n'
        '    step = getattr(bot, "announce_step_hook", None)\n'
        '    interval = getattr(self.bot, "announce_interval_seconds", 60)\n'
        '    return Announcer(step_hook=step)\n')
    assert sorted(seam.split(":")[1] for seam in seams) == ["2", "3", "4"]
    assert ASSIGNED_TO_BOT.search("    bot.announce_step_hook = hook  # type: ignore[attr-defined]")
    assert not ASSIGNED_TO_BOT.search("    settings = replace(settings, tuning=tuning)")


def test_tuning_is_fixed_in_production_and_never_shown() -> None:
    settings = load_settings({"DISCORD_TOKEN": TOKEN, "ANNOUNCE_INTERVAL_SECONDS": "1", "TUNING": "x"})
    assert settings.tuning == Tuning()  # not read from the environment
    assert (Tuning().announce_interval_seconds, Tuning().feed_tick_seconds, Tuning().announce_flood_window_seconds,
            Tuning().pager_lifetime_seconds, Tuning().reidentify_pause_seconds,
            Tuning().write_queue_limit) == (60.0, 60.0, 600.0, 300.0, 5.0, 10_000)
    assert len(settings.summary()) == len(fields(Settings)) - 1  # ``check`` shows every setting but the tuning
    tuned = replace(settings, tuning=Tuning(announce_interval_seconds=1.0))
    assert TOKEN not in repr(tuned) and "announce_interval_seconds=1.0" in repr(tuned)
