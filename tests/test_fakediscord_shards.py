"""The emulator's shards: GET /gateway/bot, IDENTIFY's ``shard`` checked, each guild's events (and
READY's guild list) only on its shard ``(guild_id >> 22) % shard_count``, events of no guild on 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.gateway import shard_of
from tests.fakediscord.harness import World, run_client
from tests.fakediscord.models import Guild, Intent
from tests.fakediscord.testing import RecordingShardedBot, blog_intents


def two_guilds(emu: FakeDiscord, world: World) -> tuple[Guild, Guild]:
    """A guild on each shard of a bot with two; members alice and bob, a #general each."""
    guilds = []
    for shard_id in (0, 1):
        guild = emu.create_guild(f"Shard {shard_id} readers", world.owner, shard=(shard_id, 2))
        for user in (world.alice, world.bob):
            emu.add_member(guild, user)
        emu.create_channel(guild, "general")
        guilds.append(guild)
    return guilds[0], guilds[1]


def general(emu: FakeDiscord, guild: Guild) -> Any:
    return next(channel for channel in emu.state.channels.values()
                if channel.guild_id == guild.id and channel.name == "general")


class RawSession:
    """A bare gateway client: IDENTIFY with a chosen ``shard``, then the dispatches it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def identify(self, emu: FakeDiscord, shard: Any) -> None:
        hello = await self.ws.receive_json()
        assert hello["op"] == 10
        await self.ws.send_json({"op": 2, "d": {
            "token": emu.token, "intents": int(Intent.GUILDS | Intent.GUILD_MESSAGES | Intent.MESSAGE_CONTENT), "shard": shard,
            "properties": {"os": "linux", "browser": "test", "device": "test"}}})

    async def next_dispatch(self) -> dict[str, Any]:
        while True:
            message = await self.ws.receive(timeout=5)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"the socket closed: {message.type} {self.ws.close_code}")
            payload = json.loads(message.data)
            if payload["op"] == 0:
                self.events.append(payload)
                return payload  # type: ignore[no-any-return]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def raw_session(http: aiohttp.ClientSession, emu: FakeDiscord, shard: Any) -> RawSession:
    session = RawSession(await http.ws_connect(emu.gateway_url + "?v=10&encoding=json"))
    await session.identify(emu, shard)
    return session


def test_guilds_are_made_on_the_shard_asked_for(emulator: FakeDiscord, world: World) -> None:
    for count in (1, 2, 3, 16):
        for shard_id in range(count):
            guild = emulator.create_guild(f"g{shard_id}/{count}", world.owner, shard=(shard_id, count))
            assert shard_of(guild.id, count) == shard_id == (guild.id >> 22) % count


async def test_gateway_bot_recommends_the_configured_shard_count(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord(recommended_shards=3, max_concurrency=2) as emu:
        async with http.get(emu.api_base + "/gateway/bot", headers={"Authorization": f"Bot {emu.token}"}) as answer:
            assert answer.status == 200
            body = await answer.json()
    assert body["url"] == emu.gateway_url and body["shards"] == 3
    assert body["session_start_limit"]["max_concurrency"] == 2
    assert body["session_start_limit"]["remaining"] == body["session_start_limit"]["total"]


async def test_an_unsharded_discord_py_bot_runs_the_recommended_shards(world: World) -> None:
    emu = world.emu
    emu.recommended_shards = 2
    first, second = two_guilds(emu, world)
    bot = RecordingShardedBot()
    async with run_client(emu, bot):
        assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        await emu.wait_until(lambda: bot.get_guild(first.id) is not None and bot.get_guild(second.id) is not None)
        assert sorted(shard for shard in emu.gateway.identified_shards) == [(0, 2), (1, 2)]
        for guild in (first, second, world.guild):
            seen = bot.get_guild(guild.id)
            assert seen is not None and seen.shard_id == shard_of(guild.id, 2)
        emu.send_message(general(emu, first), world.alice, "on shard 0")
        emu.send_message(general(emu, second), world.bob, "on shard 1")
        await emu.wait_until(lambda: sorted(bot.contents()) == ["on shard 0", "on shard 1"])


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], [0], "0,1", [0, "2"], [0, 5000]])
async def test_an_invalid_shard_closes_with_4010(emulator: FakeDiscord, http: aiohttp.ClientSession,
                                                 shard: Any) -> None:
    session = await raw_session(http, emulator, shard)
    message = await session.ws.receive(timeout=5)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert session.ws.close_code == 4010
    assert emulator.gateway.identified_shards == []


async def test_each_session_gets_only_its_shards_guilds(emulator: FakeDiscord, world: World,
                                                        http: aiohttp.ClientSession) -> None:
    first, second = two_guilds(emulator, world)
    sessions = [await raw_session(http, emulator, [shard_id, 2]) for shard_id in (0, 1)]
    for shard_id, (session, own) in enumerate(zip(sessions, (first, second), strict=True)):
        ready = await session.next_dispatch()
        assert ready["t"] == "READY" and ready["d"]["shard"] == [shard_id, 2]
        listed = {int(guild["id"]) for guild in ready["d"]["guilds"]}
        expected = {guild.id for guild in (first, second, world.guild) if shard_of(guild.id, 2) == shard_id}
        assert own.id in listed and listed == expected
        created = [await session.next_dispatch() for _ in expected]
        assert {event["t"] for event in created} == {"GUILD_CREATE"}
        assert {int(event["d"]["id"]) for event in created} == expected
    emulator.send_message(general(emulator, second), world.bob, "for shard 1")
    emulator.send_message(general(emulator, first), world.alice, "for shard 0")
    for session, text in zip(sessions, ("for shard 0", "for shard 1"), strict=True):
        event = await session.next_dispatch()
        assert event["t"] == "MESSAGE_CREATE" and event["d"]["content"] == text
    # A guild the bot joins: GUILD_CREATE on its shard only; an event of no guild: shard 0 only.
    third = emulator.create_guild("Joined later", world.owner, shard=(1, 2))
    emulator.state.dispatch("USER_UPDATE", emulator.state.user_json(emulator.bot.id), 0, None)
    zero, one = await sessions[0].next_dispatch(), await sessions[1].next_dispatch()
    assert zero["t"] == "USER_UPDATE"
    assert one["t"] == "GUILD_CREATE" and int(one["d"]["id"]) == third.id
    emulator.send_message(general(emulator, first), world.alice, "last")
    assert (await sessions[0].next_dispatch())["d"]["content"] == "last"  # nothing else came before it
    for session in sessions:
        await session.ws.close()


async def test_a_process_with_some_shards_sees_only_their_guilds(emulator: FakeDiscord, world: World) -> None:
    first, second = two_guilds(emulator, world)
    bot = RecordingShardedBot(shard_count=2, shard_ids=[1], intents=blog_intents())
    async with run_client(emulator, bot):
        assert bot.get_guild(second.id) is not None and bot.get_guild(first.id) is None
        emulator.send_message(general(emulator, first), world.alice, "not mine")
        emulator.send_message(general(emulator, second), world.bob, "mine")
        await emulator.wait_until(lambda: bot.contents() == ["mine"])
        assert emulator.gateway.identified_shards == [(1, 2)]


async def test_one_shard_dropped_resumes_alone(emulator: FakeDiscord, world: World) -> None:
    first, second = two_guilds(emulator, world)
    bot = RecordingShardedBot(shard_count=2)
    async with run_client(emulator, bot):
        await emulator.drop_connection(shard_id=1)
        emulator.send_message(general(emulator, second), world.bob, "while shard 1 was away")
        await emulator.wait_until(lambda: bot.kinds("resumed") and bot.contents() == ["while shard 1 was away"])
        assert emulator.gateway.resume_count == 1 and len(emulator.gateway.identified_shards) == 2
