"""A sweep over the read endpoints: every response must match Discord's OpenAPI spec (checked in conftest)."""

from __future__ import annotations

import discord

from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World, run_client
from tests.fakediscord.testing import RecordingBot


async def test_read_endpoints_match_the_spec(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        http = bot.http
        for channel in (world.announcements, world.news, world.forum, world.strict_forum):
            fetched = await bot.fetch_channel(channel.id)
            assert fetched.id == channel.id
        guild = await bot.fetch_guild(world.guild.id, with_counts=True)
        assert guild.name == "Blog Readers"
        await http.get_roles(world.guild.id)
        await http.get_member(world.guild.id, world.alice.id)
        await bot.fetch_user(world.bob.id)
        await bot.application_info()
        announcements = bot.get_channel(world.announcements.id)
        message = await announcements.send("x", view=discord.ui.View().add_item(
            discord.ui.Button(label="Open", url="https://example.invalid/post")))
        await message.add_reaction("👍")
        emulator.add_reaction(message.id, world.alice, "👍")
        users = [u.id async for u in message.reactions[0].users()] if message.reactions else []
        fresh = await announcements.fetch_message(message.id)
        users = [u.id async for u in fresh.reactions[0].users()]
        assert sorted(users) == sorted([emulator.bot.id, world.alice.id])
        thread = await message.create_thread(name="thread")
        await thread.fetch_members()
        await http.get_active_threads(world.guild.id)
        forum = bot.get_channel(world.forum.id)
        post = await forum.create_thread(name="post", content="hello",
                                         applied_tags=[forum.available_tags[0]])
        await bot.fetch_channel(post.thread.id)
        await post.thread.edit(archived=True)
        archived = [t.id async for t in forum.archived_threads()]
        assert archived == [post.thread.id]
        await http.get_global_commands(emulator.application_id)
        await http.get_guild_commands(emulator.application_id, world.guild.id)
        await http.get_private_archived_threads(world.announcements.id)
        await http.get_joined_private_archived_threads(world.announcements.id)
