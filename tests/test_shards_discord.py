"""Our bot on two shards (one process, SQLite) against the emulator's shard routing: each guild's
announcement and thread exactly once, comments from both shards stored, slash commands answered on
both; a process running one shard of two gets only that shard's guilds; a shard's fresh session
catches up that shard's threads."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.__main__ import open_database
from bot.storage.db import Database
from bot.web import WebServer
from tests.announcements_support import announcement_messages, cog_of, first_cycle, queue_post, wait_for
from tests.conftest import bot_log, bot_settings, running_bot, settled
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World
from tests.fakediscord.models import Channel, Guild
from tests.web_support import free_port


def guild_on_shard(emu: FakeDiscord, world: World, shard_id: int) -> tuple[Guild, Channel]:
    """A guild on shard ``shard_id`` of two, with alice and bob and an #announcements channel."""
    guild = emu.create_guild(f"Readers on shard {shard_id}", world.owner, shard=(shard_id, 2))
    for user in (world.alice, world.bob):
        emu.add_member(guild, user)
    return guild, emu.create_channel(guild, "announcements")


async def comment_texts(database: Database) -> set[str]:
    return {row["content"] for row in await database.fetch_all("SELECT content FROM comments WHERE is_bot = 0")}


async def test_two_shards_announce_store_and_answer_in_both_guilds(emulator: FakeDiscord, world: World,
                                                                   tmp_path: Path) -> None:
    (first, first_channel), (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    settings = bot_settings(emulator, tmp_path, shard_count=2)
    database = await open_database(settings)
    await queue_post(database, first.id, first_channel.id, title="Post for shard zero")
    await queue_post(database, second.id, second_channel.id, title="Post for shard one")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        assert sorted(emulator.gateway.identified_shards) == [(0, 2), (1, 2)]
        assert bot.shard_count == 2 and bot.gateway_connected()
        guilds = {guild.id: guild.shard_id for guild in bot.guilds}
        assert guilds[first.id] == 0 and guilds[second.id] == 1
        await first_cycle(bot)
        await settled(bot)
        await bot_log(bot).wait_for("(shard 0)")
        await bot_log(bot).wait_for("(shard 1)")
        threads = {}
        for channel, title in ((first_channel, "Post for shard zero"), (second_channel, "Post for shard one")):
            messages = announcement_messages(emulator, channel.id)
            assert [message.embeds[0]["title"] for message in messages] == [title]
            in_channel = emulator.threads_in(channel)
            assert [thread.id for thread in in_channel] == [messages[0].id]
            threads[channel.id] = in_channel[0]
        emulator.send_message(threads[first_channel.id], world.alice, "a comment through shard zero")
        emulator.send_message(threads[second_channel.id], world.bob, "a comment through shard one")
        await wait_for(lambda: _has(bot.database, {"a comment through shard zero", "a comment through shard one"}))
        for channel, title in ((first_channel, "Post for shard zero"), (second_channel, "Post for shard one")):
            answer = await emulator.invoke("post latest", world.alice, channel).answer_text()
            assert title in answer
        # Still once each: a second cycle finds nothing new.
        await cog_of(bot).announce_now()
        for channel in (first_channel, second_channel):
            assert len(announcement_messages(emulator, channel.id)) == 1
            assert len(emulator.threads_in(channel)) == 1


async def _has(database: Database, texts: set[str]) -> bool:
    return texts <= await comment_texts(database)


async def test_a_process_with_shard_zero_of_two_gets_only_its_guild(emulator: FakeDiscord, world: World,
                                                                    tmp_path: Path) -> None:
    (first, first_channel), (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    settings = bot_settings(emulator, tmp_path, shard_count=2, shard_ids=(0,))
    async with running_bot(emulator, settings) as bot:
        assert emulator.gateway.identified_shards == [(0, 2)]
        assert bot.get_guild(first.id) is not None and bot.get_guild(second.id) is None
        assert await emulator.invoke("post latest", world.alice, first_channel).answer_text()
        try:
            emulator.invoke("post latest", world.alice, second_channel)
        except RuntimeError as error:
            assert "shard" in str(error)
        else:
            raise AssertionError("an interaction of the other shard's guild reached this process")


async def test_a_fresh_session_of_one_shard_catches_up_that_shard(emulator: FakeDiscord, world: World,
                                                                  tmp_path: Path) -> None:
    (first, first_channel), (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    settings = bot_settings(emulator, tmp_path, shard_count=2)
    database = await open_database(settings)
    await queue_post(database, second.id, second_channel.id, title="Post for shard one")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        await settled(bot)
        thread = emulator.threads_in(second_channel)[0]
        catch_ups = bot_log(bot).count("(shard 1)")
        await emulator.invalidate_session(resumable=False, shard_id=1)
        # Sent while shard 1 has no session: only its catch-up can find it.
        emulator.send_message(thread, world.bob, "said while shard one was away")
        await bot_log(bot).wait_for("(shard 1)", count=catch_ups + 1)
        await wait_for(lambda: _has(bot.database, {"said while shard one was away"}))
        assert bot_log(bot).count("(shard 0)") == 1
        assert sorted(emulator.gateway.identified_shards) == [(0, 2), (1, 2), (1, 2)]


async def test_the_process_with_the_once_per_bot_work_announces_for_guilds_of_other_shards(
        emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    # Feed polling and announcing run in one process of the bot, whichever shards it has: the guild
    # on shard 1 gets its announcement and thread from a process running shard 0 only (through REST).
    # Which of its channels @everyone can view is worked out through REST too (the web server's rule).
    _, (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    members_only = emulator.create_channel(second, "members-only")
    emulator.deny(members_only, Perm.VIEW_CHANNEL, target=second.id, role=True)
    emulator.allow(members_only, Perm.VIEW_CHANNEL)
    settings = bot_settings(emulator, tmp_path, shard_count=2, shard_ids=(0,))
    database = await open_database(settings)
    await queue_post(database, second.id, second_channel.id, title="Post for shard one")
    await queue_post(database, second.id, members_only.id, title="Members only")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        assert bot.get_guild(second.id) is None
        await first_cycle(bot)
        messages = announcement_messages(emulator, second_channel.id)
        assert [message.embeds[0]["title"] for message in messages] == ["Post for shard one"]
        assert [thread.id for thread in emulator.threads_in(second_channel)] == [messages[0].id]
        states = await bot.database.fetch_all("SELECT state FROM announcements")
        assert [row["state"] for row in states] == ["threaded", "threaded"]
        public = await bot.database.fetch_all("SELECT channel_id, public FROM channel_visibility")
        assert {row["channel_id"]: row["public"] for row in public} == {second_channel.id: 1, members_only.id: 0}


async def test_healthz_is_down_while_one_shard_is_away(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    (_, first_channel), _ = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    settings = bot_settings(emulator, tmp_path, shard_count=2, web_port=free_port())
    async with running_bot(emulator, settings) as bot:
        server = WebServer(bot.database, settings)
        server.watch_bot(bot)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{server.port}/healthz"
                async with http.get(url) as response:
                    assert response.status == 200 and (await response.json())["discord"]["connected"] is True
                shard = bot.get_shard(1)
                assert shard is not None
                await shard.disconnect()  # stays away until connected again, unlike after a drop
                async with http.get(url) as response:
                    body = await response.json()
                assert response.status == 503 and body["discord"]["connected"] is False, body
                assert "not connected to Discord" in body["problems"]
                # Shard 0 works on meanwhile.
                assert await emulator.invoke("post latest", world.alice, first_channel).answer_text()
                await shard.reconnect()
                await wait_for(bot.gateway_connected)
                async with http.get(url) as response:
                    assert response.status == 200 and (await response.json())["discord"]["connected"] is True
        finally:
            await server.stop()
