"""Small helpers for tests written against the emulator (a minimal bot with chosen intents)."""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands


def blog_intents(*, message_content: bool = True, members: bool = False) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.guild_reactions = True
    intents.message_content = message_content
    intents.members = members
    return intents


class RecordingBot(commands.Bot):
    """A plain ``commands.Bot`` that records the events it received (for the emulator's own tests)."""

    def __init__(self, *, intents: discord.Intents | None = None, **options: Any) -> None:
        options.setdefault("guild_ready_timeout", 0.05)
        super().__init__(command_prefix="!", intents=intents or blog_intents(), help_command=None, **options)
        self.seen: list[tuple[str, Any]] = []

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(("message", message))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.seen.append(("edit", payload))

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.seen.append(("delete", payload))

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.seen.append(("bulk_delete", payload))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.seen.append(("reaction_add", payload))

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.seen.append(("reaction_remove", payload))

    async def on_raw_reaction_clear(self, payload: discord.RawReactionClearEvent) -> None:
        self.seen.append(("reaction_clear", payload))

    async def on_raw_reaction_clear_emoji(self, payload: discord.RawReactionClearEmojiEvent) -> None:
        self.seen.append(("reaction_clear_emoji", payload))

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        self.seen.append(("thread_update", payload))

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.seen.append(("thread_create", thread))

    async def on_resumed(self) -> None:
        self.seen.append(("resumed", None))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before a re-IDENTIFY (Discord's identify rate); tests need not."""

    def contents(self) -> list[str]:
        return [m.content for kind, m in self.seen if kind == "message"]

    def kinds(self, kind: str) -> list[Any]:
        return [value for k, value in self.seen if k == kind]


class RecordingShardedBot(RecordingBot, commands.AutoShardedBot):
    """:class:`RecordingBot` as discord.py's ``AutoShardedBot`` (pass ``shard_count``/``shard_ids``)."""
