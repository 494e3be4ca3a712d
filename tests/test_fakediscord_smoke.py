from __future__ import annotations

import discord
from discord.ext import commands

from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World, run_client


def make_bot(**kwargs: object) -> commands.Bot:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.guild_reactions = True
    return commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05, **kwargs)


async def test_login_and_post(emulator: FakeDiscord, world: World) -> None:
    bot = make_bot()
    async with run_client(emulator, bot):
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Blog Readers"
        channel = guild.get_channel(world.announcements.id)
        sent = await channel.send("hello")
        assert emulator.messages(world.announcements)[-1].content == "hello"
        thread = await sent.create_thread(name="t")
        assert thread.id == sent.id
