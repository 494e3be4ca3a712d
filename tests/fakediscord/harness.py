"""Pytest fixtures and helpers: a ready emulator with the default guild, and ``run_client``.

``pytest_plugins = ["tests.fakediscord.harness"]`` (done in tests/conftest.py) makes ``emulator`` and
``world`` available to every test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TypeVar

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from .emulator import FakeDiscord
from .models import Channel, ChannelType, Guild, Perm, Role, User

ClientT = TypeVar("ClientT", bound=discord.Client)
REQUIRE_TAG = 1 << 4


@dataclass
class World:
    """The default test world: guild "Blog Readers" and its channels, roles and people."""

    emu: FakeDiscord
    guild: Guild
    owner: User
    alice: User
    bob: User
    readers: Role
    announcements: Channel
    news: Channel
    forum: Channel
    strict_forum: Channel

    @property
    def bot(self) -> User:
        return self.emu.bot


def build_default_world(emu: FakeDiscord) -> World:
    owner = emu.create_user("owner", global_name="Blog Owner")
    guild = emu.create_guild("Blog Readers", owner)
    admin = emu.create_role(guild, "Admin", permissions=int(Perm.ADMINISTRATOR))
    guild.members[owner.id].roles.append(admin.id)
    readers = emu.create_role(guild, "Readers", mentionable=True)
    alice = emu.create_user("alice", global_name="Alice")
    bob = emu.create_user("bob", global_name="Bob")
    emu.add_member(guild, alice, roles=[readers])
    emu.add_member(guild, bob, roles=[readers])
    announcements = emu.create_channel(guild, "announcements", topic="New posts")
    news = emu.create_channel(guild, "news", type=ChannelType.NEWS)
    forum = emu.create_channel(guild, "blog-forum", type=ChannelType.FORUM, tags=["python", "discord", "news"])
    strict = emu.create_channel(guild, "strict-forum", type=ChannelType.FORUM, tags=["python", "discord", "news"],
                                flags=REQUIRE_TAG)
    return World(emu, guild, owner, alice, bob, readers, announcements, news, forum, strict)


async def start_emulator(**options: object) -> tuple[FakeDiscord, World]:
    emu = FakeDiscord(**options)  # type: ignore[arg-type]
    await emu.start()
    return emu, build_default_world(emu)


@pytest.fixture
async def emulator() -> AsyncIterator[FakeDiscord]:
    """A running emulator (127.0.0.1, random port) with the default world; ``emulator.world`` holds it."""
    emu, world = await start_emulator()
    emu.world = world  # type: ignore[attr-defined]
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
def world(emulator: FakeDiscord) -> World:
    return emulator.world  # type: ignore[attr-defined,no-any-return]


@contextlib.contextmanager
def pointed_at(emu: FakeDiscord) -> Iterator[None]:
    """Point discord.py's globals at the emulator and restore them afterwards."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = emu.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emu.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


async def _wait_ready(client: discord.Client) -> None:
    # ``wait_until_ready`` needs the event that ``login()`` creates; wait for it to exist first.
    while getattr(client, "_ready", discord.utils.MISSING) is discord.utils.MISSING:  # noqa: ASYNC110 (no event to await yet)
        await asyncio.sleep(0.005)
    await client.wait_until_ready()


@contextlib.asynccontextmanager
async def run_client(emu: FakeDiscord, client: ClientT, *, ready_timeout: float = 10.0,
                     token: str | None = None) -> AsyncIterator[ClientT]:
    """Start ``client`` against the emulator, wait until it is ready, close it cleanly on exit.

    For a low wait after the last GUILD_CREATE build the client with ``guild_ready_timeout=0.05``.
    """
    with pointed_at(emu):
        task = asyncio.create_task(client.start(token or emu.token), name="fakediscord-client")
        waiter = asyncio.create_task(_wait_ready(client))
        try:
            done, _ = await asyncio.wait({task, waiter}, timeout=ready_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                waiter.cancel()
                task.result()  # raises the client's startup error
                raise RuntimeError("the client stopped before it became ready")
            if waiter not in done:
                waiter.cancel()
                raise TimeoutError(f"the client was not ready within {ready_timeout}s")
            yield client
        finally:
            if not client.is_closed():
                await client.close()
            try:
                await asyncio.wait_for(task, timeout=5)
            except (asyncio.CancelledError, TimeoutError):
                task.cancel()
            except Exception:  # noqa: BLE001 - the startup error was already raised above
                pass
