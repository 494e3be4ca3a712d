"""The once-per-bot work (feed polling and announcing, the reconcile, webhook delivery) starts in one
place, ``bot.once_per_bot``; with SQLite this process always runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.app import OncePerBot
from tests.conftest import bot_log, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World


async def test_the_bots_loops_run_through_it_and_stop_with_the_bot(emulator: FakeDiscord, world: World,
                                                                   tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, shard_count=2)) as bot:
        once = bot.once_per_bot
        assert once.held
        assert once.running == ["feed polling and announcing", "reconcile of discussions"]
        await bot_log(bot).wait_for("announcement cycle done")
        await bot_log(bot).wait_for("reconcile of")
    assert once.running == []


async def test_pieces_start_only_while_the_role_is_held() -> None:
    events: list[str] = []

    def piece(name: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
        async def start() -> None:
            events.append(f"start {name}")

        async def stop() -> None:
            events.append(f"stop {name}")

        return start, stop

    once = OncePerBot()
    await once.add("polling", *piece("polling"))
    once.held = False
    await once.add("webhooks", *piece("webhooks"))
    assert once.running == ["polling"] and events == ["start polling"]
    with pytest.raises(ValueError, match="polling"):
        await once.add("polling", *piece("polling"))
    await once.remove("webhooks")
    await once.remove("polling")
    await once.remove("polling")
    assert events == ["start polling", "stop polling"] and once.running == []
