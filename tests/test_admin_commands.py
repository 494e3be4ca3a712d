"""The admin commands end to end: our ConversationBot against the Discord emulator, feeds served by
a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.announce.admin import get_guild_settings
from bot.app import GENERIC_FAILURE
from bot.storage import feeds as feed_store
from tests.conftest import BOTH_ENGINES, bot_settings, running_bot
from tests.fakediscord.emulator import FakeDiscord
from tests.fakediscord.harness import World
from tests.fakediscord.models import Message, Perm

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Example Blog</title><link>http://127.0.0.1/</link>
<item><title>@everyone Newest post</title><link>http://127.0.0.1/newest</link><guid>n3</guid>
<pubDate>Sat, 21 Nov 2026 10:00:00 +0000</pubDate><description>The newest words.</description></item>
<item><title>Middle post</title><link>http://127.0.0.1/middle</link><guid>n2</guid>
<pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate><description>Middle words.</description></item>
<item><title>Oldest post</title><link>http://127.0.0.1/oldest</link><guid>n1</guid>
<pubDate>Thu, 19 Nov 2026 10:00:00 +0000</pubDate><description>Old words.</description></item>
</channel></rss>"""
HTML = "<!doctype html><html><head><title>Not a feed</title></head><body><p>Hello</p></body></html>"


@pytest.fixture
async def feed_server() -> AsyncIterator[str]:
    async def rss(request: web.Request) -> web.Response:
        return web.Response(text=RSS, content_type="application/rss+xml")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text=HTML, content_type="text/html")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="gone")

    app = web.Application()
    app.router.add_get("/feed.xml", rss)
    app.router.add_get("/page.html", html)
    app.router.add_get("/missing.xml", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def assert_private_and_silent(message: Message) -> None:
    assert message.ephemeral
    assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
    assert not message.mentions and not message.mention_roles and not message.mention_everyone


async def answer(emulator: FakeDiscord, command: str, user: Any, channel: Any,
                 options: dict[str, Any] | None = None, **kwargs: Any) -> Message:
    handle = emulator.invoke(command, user, channel, options, **kwargs)
    kind = await handle.response()
    message = (await handle.wait_followups())[0] if kind == 5 else await handle.wait_original()
    assert message.content != GENERIC_FAILURE
    return message


async def test_feed_add_good_feed_then_manage_it(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                 feed_server: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
        url = f"{feed_server}/feed.xml"
        message = await answer(emulator, "feed add", world.owner, world.announcements,
                               {"url": url, "channel": world.announcements, "backfill": 0,
                                "ping_role": world.readers})
        text = message.content
        assert "Added **Example Blog**" in text and "Found 3 items" in text and "Newest post" in text
        assert f"<#{world.announcements.id}>" in text and "Nothing already in the feed will be announced" in text
        assert "@everyone" not in text
        assert_private_and_silent(message)
        stored = await feed_store.list_feeds(bot.database, world.guild.id)
        assert len(stored) == 1
        feed = stored[0].feed
        assert (feed.channel_id, feed.channel_kind, feed.backfill, feed.ping_role_id) == (
            world.announcements.id, "text", 0, world.readers.id)

        again = await answer(emulator, "feed add", world.owner, world.announcements,
                             {"url": url, "channel": world.forum})
        assert "already followed" in again.content and again.ephemeral

        choices = await emulator.autocomplete("feed pause", world.owner, world.announcements, "feed",
                                              "feed.x").wait_choices()
        assert [choice["value"] for choice in choices] == [str(feed.id)]
        assert all(len(choice["name"]) <= 100 for choice in choices)
        assert await emulator.autocomplete("feed pause", world.owner, world.announcements, "feed",
                                           "nothing like it").wait_choices() == []

        too_big = await answer(emulator, "feed pause", world.owner, world.announcements,
                               {"feed": "99999999999999999999999"})
        assert too_big.content.startswith("There is no such feed in this server")
        paused = await answer(emulator, "feed pause", world.owner, world.announcements, {"feed": str(feed.id)})
        assert "Paused" in paused.content
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert "paused" in listing.content and url.split("//")[1] in listing.content
        assert_private_and_silent(listing)
        resumed = await answer(emulator, "feed resume", world.owner, world.announcements, {"feed": str(feed.id)})
        assert "Resumed" in resumed.content
        assert not (await feed_store.get_feed(bot.database, feed.id)).paused  # type: ignore[union-attr]

        polled = await answer(emulator, "feed poll", world.owner, world.announcements, {"feed": str(feed.id)})
        assert "Polled now" in polled.content and f"#{feed.id}" in polled.content
        assert "3 new posts, none to announce" in polled.content
        assert_private_and_silent(polled)

        removed = await answer(emulator, "feed remove", world.owner, world.announcements, {"feed": str(feed.id)})
        assert "Removed" in removed.content
        assert await feed_store.list_feeds(bot.database, world.guild.id) == []
        gone = await answer(emulator, "feed remove", world.owner, world.announcements, {"feed": str(feed.id)})
        assert "no such feed" in gone.content


async def test_feed_add_to_a_forum(emulator: FakeDiscord, world: World, tmp_path: Path, feed_server: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
        message = await answer(emulator, "feed add", world.owner, world.announcements,
                               {"url": f"{feed_server}/feed.xml", "channel": world.forum})
        assert "Added" in message.content and "newest 1 post will be announced" in message.content
        feed = (await feed_store.list_feeds(bot.database, world.guild.id))[0].feed
        assert (feed.channel_id, feed.channel_kind) == (world.forum.id, "forum")


@pytest.mark.parametrize(("path", "expected"), [
    ("/page.html", "not a feed"),
    ("/missing.xml", "404"),
])
async def test_feed_add_broken_feed_is_explained(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                 feed_server: str, path: str, expected: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
        message = await answer(emulator, "feed add", world.owner, world.announcements,
                               {"url": feed_server + path, "channel": world.announcements})
        assert message.content.startswith("Could not add that feed:")
        assert expected in message.content and "Nothing was saved" in message.content
        assert_private_and_silent(message)
        assert await feed_store.list_feeds(bot.database, world.guild.id) == []


async def test_feed_add_private_address_refused(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                feed_server: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=False)) as bot:
        message = await answer(emulator, "feed add", world.owner, world.announcements,
                               {"url": f"{feed_server}/feed.xml", "channel": world.announcements})
        assert message.content.startswith("Could not add that feed: refused: private address (127.0.0.1)")
        assert_private_and_silent(message)
        assert await feed_store.list_feeds(bot.database, world.guild.id) == []
        # NAT64-wrapped loopback is refused just the same, by /feed test too.
        tested = await answer(emulator, "feed test", world.owner, world.announcements,
                              {"url": "http://[64:ff9b::7f00:1]:8080/feed.xml"})
        assert tested.content.startswith("That feed cannot be read: refused: private address (64:ff9b::7f00:1)")
        assert_private_and_silent(tested)


async def test_feed_test_is_a_dry_run(emulator: FakeDiscord, world: World, tmp_path: Path, feed_server: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
        message = await answer(emulator, "feed test", world.owner, world.announcements,
                               {"url": f"{feed_server}/feed.xml"})
        text = message.content
        assert "**Example Blog** (rss): 3 items. Nothing was saved." in text
        assert text.index("Newest post") < text.index("Middle post") and "> The newest words." in text
        assert "@everyone" not in text
        assert_private_and_silent(message)
        assert await feed_store.list_feeds(bot.database, world.guild.id) == []
        broken = await answer(emulator, "feed test", world.owner, world.announcements,
                              {"url": f"{feed_server}/page.html"})
        assert broken.content.startswith("That feed cannot be read:") and "not a feed" in broken.content


async def test_feed_list_and_poll_when_empty(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as _bot:
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert listing.content.startswith("No feeds yet")
        polled = await answer(emulator, "feed poll", world.owner, world.announcements)
        assert "no active feed" in polled.content and polled.ephemeral


async def test_non_admins_are_refused(emulator: FakeDiscord, world: World, tmp_path: Path, feed_server: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
        # default_permissions: Discord does not even offer the commands to members without Manage Server.
        with pytest.raises(PermissionError):
            emulator.invoke("feed list", world.alice, world.announcements)
        # A server may override that in its Integrations settings; the runtime check still refuses.
        for command in emulator.state.commands.values():
            if command.name in ("feed", "settings"):
                command.default_member_permissions = None
        for command, options in [
            ("feed list", {}),
            ("feed add", {"url": f"{feed_server}/feed.xml", "channel": world.announcements}),
            ("feed test", {"url": f"{feed_server}/feed.xml"}),
            ("feed poll", {}),
            ("settings show", {}),
            ("settings announcements", {"per_cycle": 9}),
        ]:
            message = await answer(emulator, command, world.alice, world.announcements, options)
            assert message.content == "You need the Manage Server permission to use this command."
            assert message.ephemeral
        assert await feed_store.list_feeds(bot.database, world.guild.id) == []
        choices = await emulator.autocomplete("feed pause", world.alice, world.announcements, "feed",
                                              "").wait_choices()
        assert choices == []
        # Manage Server alone (no Administrator) is enough.
        allowed = await answer(emulator, "feed list", world.alice, world.announcements,
                               permissions=int(Perm.MANAGE_GUILD))
        assert allowed.content.startswith("No feeds yet")


async def test_settings_per_guild(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        shown = await answer(emulator, "settings show", world.owner, world.announcements)
        assert "the bot's defaults" in shown.content and "**5**" in shown.content and "1 week" in shown.content
        changed = await answer(emulator, "settings announcements", world.owner, world.announcements,
                               {"per_cycle": 12})
        assert "Saved" in changed.content and "**12**" in changed.content
        archive = await answer(emulator, "settings thread-archive", world.owner, world.announcements,
                               {"after": 1440})
        assert "24 hours" in archive.content
        assert_private_and_silent(archive)
        stored = await get_guild_settings(bot.database, world.guild.id, bot.settings)
        assert (stored.announcements_per_cycle, stored.thread_auto_archive_minutes, stored.customised) == (
            12, 1440, True)
