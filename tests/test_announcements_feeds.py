"""The whole path with a real feed: FEED_URLS registered at start-up, the feed polled from a local
server, its new posts announced oldest first; and the admins' feed notices posted once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.__main__ import open_database
from tests.announcements_support import (
    announcement_messages,
    cog_of,
    wait_for,
)
from tests.conftest import bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, numbered_items, rss_document


async def test_configured_feed_is_registered_polled_and_announced(emulator: FakeDiscord, world: World,
                                                                  tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        now = datetime.now(UTC)
        served = server.serve("/feed.xml", rss_document(numbered_items(3, newest=now - timedelta(hours=3)),
                                                        title="Local Blog"))
        url = server.url("/feed.xml")
        settings = bot_settings(emulator, tmp_path, feed_urls=(url,), announce_channel_id=world.announcements.id,
                                 allow_private_feeds=True, poll_interval_seconds=60)
        async with running_bot(emulator, settings) as bot:
            cog = cog_of(bot)
            # The announcement interval is an hour (TEST_TUNING): the poll's own wake announces.
            threaded = "SELECT count(*) FROM announcements WHERE state = 'threaded'"
            await wait_for(lambda: bot.database.fetch_value(threaded))
            feed = await bot.database.fetch_one("SELECT * FROM feeds")
            assert feed is not None and feed["guild_id"] == world.guild.id
            assert feed["channel_id"] == world.announcements.id and feed["channel_kind"] == "text"
            [first] = announcement_messages(emulator, world.announcements.id)
            assert first.embeds[0]["title"] == "Post 3"  # backfill: only the newest item of a new feed
            assert first.embeds[0]["footer"]["text"] == "Local Blog"

            served.body = rss_document(numbered_items(5, newest=now - timedelta(minutes=5)), title="Local Blog")
            await cog.scheduler.poll_feed(feed["id"])
            await wait_for(lambda: len(emulator.threads_in(world.announcements)) == 3)
            titles = [m.embeds[0]["title"] for m in announcement_messages(emulator, world.announcements.id)]
            assert titles == ["Post 3", "Post 4", "Post 5"]  # the new ones oldest first

        # A restart registers nothing twice.
        async with running_bot(emulator, settings) as bot:
            await wait_for(lambda: cog_of(bot)._registered)
            assert await bot.database.fetch_value("SELECT count(*) FROM feeds") == 1
    finally:
        await server.close()


async def test_feed_notice_is_posted_once_without_mentions(emulator: FakeDiscord, world: World,
                                                           tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    await database.write(lambda c: c.execute(
        "INSERT INTO feeds (guild_id, url, channel_id, title, disabled_reason, created_at) "
        "VALUES (?, 'https://gone.example/feed', ?, 'Gone', 'HTTP 410 @everyone', '2026-01-01T00:00:00+00:00')",
        (world.guild.id, world.announcements.id)))
    await database.close()

    def notices() -> list[str]:
        return [m.content for m in emulator.bot_messages(world.announcements) if "turned off" in m.content]

    async with running_bot(emulator, settings) as bot:
        await emulator.wait_until(notices)
        await wait_for(lambda: bot.database.fetch_value("SELECT disabled_notified FROM feeds"))
    async with running_bot(emulator, settings) as bot:
        await wait_for(lambda: cog_of(bot)._registered)
        await cog_of(bot).post_feed_notices()
    [notice] = [m for m in emulator.bot_messages(world.announcements) if "turned off" in m.content]
    assert "https://gone.example/feed" in notice.content
    assert notice.allowed_mentions is not None and notice.allowed_mentions["parse"] == []
    assert notice.mention_everyone is False


async def test_feed_urls_in_a_forum_and_an_unknown_channel(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    forum_settings = bot_settings(emulator, tmp_path, feed_urls=("http://127.0.0.1:9/feed.xml",),
                                   announce_channel_id=world.forum.id, poll_interval_seconds=3600)
    async with running_bot(emulator, forum_settings) as bot:
        await wait_for(lambda: cog_of(bot)._registered)
        feed = await bot.database.fetch_one("SELECT guild_id, channel_id, channel_kind FROM feeds")
        assert feed is not None and tuple(feed) == (world.guild.id, world.forum.id, "forum")

    caplog.set_level(logging.ERROR)
    unknown = bot_settings(emulator, tmp_path / "other", feed_urls=("http://127.0.0.1:9/feed.xml",),
                            announce_channel_id=123456789012345678, poll_interval_seconds=3600)
    async with running_bot(emulator, unknown) as bot:
        await wait_for(lambda: cog_of(bot)._registered)
        assert await bot.database.fetch_value("SELECT count(*) FROM feeds") == 0
    assert any("ANNOUNCE_CHANNEL_ID 123456789012345678" in r.getMessage() for r in caplog.records)
