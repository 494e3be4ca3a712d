"""The bot records whether @everyone can view a discussion's channel, and the web server follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import load_settings
from bot.storage import Database
from bot.storage.visibility import channel_visibility
from bot.web import create_app
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World, run_client
from tests.test_discussions_discord import FastConversationBot


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "conversation.db")
    try:
        yield db
    finally:
        await db.close()


async def test_private_channel_threads_leave_the_blog_and_come_back(emulator: FakeDiscord, world: World,
                                                                    database: Database, tmp_path: Path) -> None:
    starter = emulator.send_message(world.announcements, emulator.bot, "New post")
    thread = emulator.create_thread(world.announcements, "A post", emulator.bot, message=starter)
    post_id = await add_post_thread(database, thread.id, guild_id=world.guild.id,
                                    parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    settings = load_settings({"DISCORD_TOKEN": emulator.token, "DISCORD_API_BASE": emulator.api_base,
                              "DISCORD_GATEWAY_URL": emulator.gateway_url,
                              "DATABASE_PATH": str(tmp_path / "conversation.db")})
    async with TestClient(TestServer(create_app(database, settings), host="127.0.0.1")) as client:
        # A database from before channels were recorded: private until the bot has looked.
        assert await channel_visibility(database, world.announcements.id) is None
        assert (await client.get(f"/p/{post_id}")).status == 404
        bot = FastConversationBot(settings, database, sync_mode="force", guild_ready_timeout=0.05)
        async with run_client(emulator, bot):

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
