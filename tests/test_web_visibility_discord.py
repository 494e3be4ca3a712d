"""The bot records which channels @everyone can view, and the blog serves only those discussions."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.storage import Database
from bot.storage.visibility import channel_visibility
from bot.web import create_app
from tests.conftest import bot_settings, running_bot
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World


async def test_private_channel_threads_leave_the_blog_and_come_back(emulator: FakeDiscord, world: World,
                                                                    database: Database, tmp_path: Path) -> None:
    starter = emulator.send_message(world.announcements, emulator.bot, "New post")
    thread = emulator.create_thread(world.announcements, "A post", emulator.bot, message=starter)
    post_id = await add_post_thread(database, thread.id, guild_id=world.guild.id,
                                    parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    settings = bot_settings(emulator, tmp_path)
    async with TestClient(TestServer(create_app(database, settings), host="127.0.0.1")) as client:
        # A database from before channels were recorded: private until the bot has looked.
        assert await channel_visibility(database, world.announcements.id) is None
        assert (await client.get(f"/p/{post_id}")).status == 404
        async with running_bot(emulator, settings):

            async def visibility_is(expected: bool) -> bool:
                return await channel_visibility(database, world.announcements.id) is expected

            await eventually(lambda: visibility_is(True), what="the start-up check")
            assert (await client.get(f"/p/{post_id}")).status == 200
            emulator.deny(world.announcements, Perm.VIEW_CHANNEL, target=world.guild.id, role=True)
            await eventually(lambda: visibility_is(False), what="the @everyone overwrite")
            assert (await client.get(f"/p/{post_id}")).status == 404
            emulator.clear_overwrite(world.announcements, target=world.guild.id, role=True)
            await eventually(lambda: visibility_is(True), what="the overwrite removed")
            assert (await client.get(f"/p/{post_id}")).status == 200
