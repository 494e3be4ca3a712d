"""The project's own bot (``bot.app.ConversationBot``) against the emulator, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord

from bot.config import load_settings
from tests.conftest import TEST_TUNING, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World


def command_without_required_options(emu: FakeDiscord) -> Iterator[str]:
    """``"name"`` or ``"name sub"`` for each chat-input command runnable with no options."""
    for name, command in sorted(emu.commands().items()):
        if command.type != 1:
            continue
        subs = [o for o in command.options if o["type"] == 1]
        if not subs and not any(o.get("required") for o in command.options):
            yield name
        for sub in subs:
            if not any(o.get("required") for o in sub.get("options") or []):
                yield f"{name} {sub['name']}"


def autocomplete_options(emu: FakeDiscord) -> Iterator[tuple[str, str]]:
    """``("name sub", option)`` for each chat-input option with autocomplete."""
    def walk(prefix: str, options: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for option in options:
            if option["type"] in (1, 2):
                yield from walk(f"{prefix} {option['name']}", option.get("options") or [])
            elif option.get("autocomplete"):
                yield prefix, option["name"]

    for name, command in sorted(emu.commands().items()):
        if command.type == 1:
            yield from walk(name, command.options)


async def test_conversation_bot_logs_in_syncs_and_survives_trouble(emulator: FakeDiscord, world: World,
                                                                   tmp_path: Path) -> None:
    settings = load_settings({
        "DISCORD_TOKEN": emulator.token,
        "DISCORD_API_BASE": emulator.api_base,
        "DISCORD_GATEWAY_URL": emulator.gateway_url,
        "DATABASE_PATH": str(tmp_path / "conversation.db"),
    })
    assert settings.discord_api_base == emulator.api_base
    async with running_bot(emulator, replace(settings, tuning=TEST_TUNING)) as bot:
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Blog Readers"
        assert emulator.command_syncs == 1  # every command passed Discord's validation
        assert emulator.commands(), "the bot registered no commands"

        # Posting, a thread, and a burst of 429s on the way
        channel = guild.get_channel(world.announcements.id)
        emulator.rate_limit_next(3, route="POST /channels/{id}/messages", retry_after=0.02)
        message = await channel.send("Acceptance post")
        thread = await message.create_thread(name="Acceptance post")
        assert emulator.channel(thread.id).parent_id == world.announcements.id

        # A dropped gateway connection loses nothing
        seen: list[str] = []

        async def on_message(msg: discord.Message) -> None:
            seen.append(msg.content)

        bot.add_listener(on_message)
        await emulator.drop_connection()
        emulator.send_message(thread.id, world.alice, "comment while reconnecting")
        await emulator.wait_until(lambda: "comment while reconnecting" in seen)

        # An injected slash command is answered (whatever the cogs decide to say)
        path = next(command_without_required_options(emulator), None)
        assert path is not None, "no slash command can be run without options"
        handle = emulator.invoke(path, world.owner, world.announcements)
        assert await handle.response() in (4, 5)
        assert await handle.answer_text()

        # Autocomplete, for the first option that has it
        found = next(autocomplete_options(emulator), None)
        if found is not None:
            path, option = found
            typed = emulator.autocomplete(path, world.owner, world.announcements, focused=option, value="")
            assert isinstance(await typed.wait_choices(), list)
    assert bot.is_closed()
    await asyncio.sleep(0)
