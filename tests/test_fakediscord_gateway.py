"""The emulator's gateway: identify, intents, resume with replay, reconnects, invalid sessions."""

from __future__ import annotations

import json
import zlib

import aiohttp
import discord
import pytest

from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World, run_client, start_emulator
from tests.fakediscord.testing import RecordingBot, blog_intents


async def test_ready_carries_the_guild_with_channels_forums_and_roles(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Blog Readers"
        assert isinstance(guild.get_channel(world.announcements.id), discord.TextChannel)
        news = guild.get_channel(world.news.id)
        assert isinstance(news, discord.TextChannel) and news.is_news()
        forum = guild.get_channel(world.forum.id)
        assert isinstance(forum, discord.ForumChannel)
        assert sorted(t.name for t in forum.available_tags) == ["discord", "news", "python"]
        strict = guild.get_channel(world.strict_forum.id)
        assert isinstance(strict, discord.ForumChannel) and strict.flags.require_tag
        assert "Readers" in [r.name for r in guild.roles]
        assert bot.user is not None and bot.user.id == emulator.bot.id
        assert bot.application_id == emulator.application_id
        assert guild.me is not None


async def test_wrong_token_closes_with_4004(emulator: FakeDiscord) -> None:
    bot = RecordingBot()
    with pytest.raises(discord.LoginFailure):
        async with run_client(emulator, bot, token="not-the-token-at-all-x"):
            pass


async def test_privileged_intent_not_enabled_in_portal_closes_4014() -> None:
    emu, _ = await start_emulator(message_content_enabled=False)
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with run_client(emu, RecordingBot(intents=blog_intents(message_content=True))):
                pass
    finally:
        await emu.stop()


async def test_without_message_content_intent_other_peoples_messages_are_blank(emulator: FakeDiscord,
                                                                                world: World) -> None:
    bot = RecordingBot(intents=blog_intents(message_content=False))
    async with run_client(emulator, bot):
        emulator.send_message(world.announcements, world.alice, "secret words",
                              embeds=[{"title": "hidden"}])
        emulator.send_message(world.announcements, world.bob, f"hey <@{emulator.bot.id}>")
        await emulator.wait_until(lambda: len(bot.kinds("message")) == 2)
        first, second = bot.kinds("message")
        assert first.content == "" and first.embeds == []
        assert second.content == f"hey <@{emulator.bot.id}>"  # mentions of the bot keep their content


async def test_intents_filter_events(emulator: FakeDiscord, world: World) -> None:
    intents = blog_intents()
    intents.guild_reactions = False
    bot = RecordingBot(intents=intents)
    async with run_client(emulator, bot):
        message = emulator.send_message(world.announcements, world.alice, "hi")
        emulator.add_reaction(message, world.bob, "👍")
        emulator.send_message(world.announcements, world.alice, "after")
        await emulator.wait_until(lambda: bot.contents() == ["hi", "after"])
        assert bot.kinds("reaction_add") == []
        sent = [p.get("t") for p in emulator.gateway.sent]
        assert "MESSAGE_REACTION_ADD" not in sent


async def test_no_events_from_channels_the_bot_cannot_view(emulator: FakeDiscord, world: World) -> None:
    emulator.deny(world.news, Perm.VIEW_CHANNEL)
    bot = RecordingBot()
    async with run_client(emulator, bot):
        emulator.send_message(world.news, world.alice, "hidden")
        emulator.send_message(world.announcements, world.alice, "visible")
        await emulator.wait_until(lambda: bot.contents() == ["visible"])
        assert bot.get_channel(world.news.id) is not None  # the channel itself is still listed


async def test_dropped_connection_resumes_and_replays_missed_events(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        emulator.send_message(world.announcements, world.alice, "before")
        await emulator.wait_until(lambda: bot.contents() == ["before"])
        await emulator.drop_connection()
        await emulator.wait_until(lambda: not emulator.connected)
        for n in range(5):
            emulator.send_message(world.announcements, world.alice, f"while away {n}")
        await emulator.wait_until(lambda: len(bot.contents()) == 6 and bot.kinds("resumed"))
        assert bot.contents() == ["before"] + [f"while away {n}" for n in range(5)]
        assert emulator.gateway.resume_count == 1 and emulator.gateway.identify_count == 1


async def test_reconnect_opcode_resumes(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        await emulator.force_reconnect()
        emulator.send_message(world.announcements, world.alice, "during reconnect")
        await emulator.wait_until(lambda: bot.kinds("resumed") and bot.contents() == ["during reconnect"])


async def test_invalid_session_not_resumable_reidentifies(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        await emulator.invalidate_session(resumable=False)
        await emulator.wait_until(lambda: emulator.gateway.identify_count == 2 and emulator.connected)
        emulator.send_message(world.announcements, world.alice, "new session")
        await emulator.wait_until(lambda: bot.contents() == ["new session"])


async def test_invalid_session_resumable_resumes(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        await emulator.invalidate_session(resumable=True)
        await emulator.wait_until(lambda: emulator.gateway.resume_count == 1 and emulator.connected)
        emulator.send_message(world.announcements, world.alice, "still here")
        await emulator.wait_until(lambda: bot.contents() == ["still here"])


async def test_offline_changes_are_only_visible_through_history(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        pass
    assert not emulator.connected
    missed = emulator.send_message(world.announcements, world.alice, "while the bot was off")
    emulator.add_reaction(missed, world.bob, "🎉")
    gone = emulator.send_message(world.announcements, world.bob, "deleted while off")
    emulator.delete_message(gone)
    edited = emulator.send_message(world.announcements, world.bob, "first")
    emulator.edit_message(edited, "edited while off")
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        history = [m async for m in channel.history(limit=10)]
        assert [m.content for m in history] == ["edited while off", "while the bot was off"]
        assert history[0].edited_at is not None
        assert history[1].reactions[0].count == 1
        assert bot.contents() == []


async def test_raw_gateway_plain_text_and_zlib_stream(emulator: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{emulator.gateway_url}?v=10&encoding=json") as ws:
            hello = await ws.receive()
            assert hello.type == aiohttp.WSMsgType.TEXT and json.loads(hello.data)["op"] == 10
            await ws.send_json({"op": 1, "d": None})
            assert json.loads((await ws.receive()).data)["op"] == 11
            await ws.send_json({"op": 2, "d": {"token": emulator.token, "intents": 1 | 512,
                                               "properties": {"os": "linux", "browser": "t", "device": "t"}}})
            ready = json.loads((await ws.receive()).data)
            assert ready["t"] == "READY" and ready["s"] == 1
            assert ready["d"]["resume_gateway_url"] == emulator.gateway_url
            guild = json.loads((await ws.receive()).data)
            assert guild["t"] == "GUILD_CREATE" and guild["d"]["name"] == "Blog Readers"
        async with session.ws_connect(f"{emulator.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            inflator = zlib.decompressobj()
            first = await ws.receive()
            assert first.type == aiohttp.WSMsgType.BINARY and first.data.endswith(b"\x00\x00\xff\xff")
            assert json.loads(inflator.decompress(first.data))["op"] == 10
            await ws.send_json({"op": 1, "d": None})
            assert json.loads(inflator.decompress((await ws.receive()).data))["op"] == 11  # same stream
        async with session.ws_connect(emulator.gateway_url) as ws:
            await ws.receive()
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1}})
            closed = await ws.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4004
