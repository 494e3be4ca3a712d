"""Announce on discovery: a poll that stores new posts wakes the announcer, which sends them at once
(the announcement interval is an hour in TEST_TUNING, so only the wake can); ANNOUNCEMENTS_PER_CYCLE
is a rate per channel over a sliding window; a stop during a woken announcement announces once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.announce.machine import INVITE_LINE
from bot.storage.db import Database, from_db_time
from tests.announcements_support import add_feed, announcement_messages, first_cycle, wait_for
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, numbered_items, rss_document

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

SEND = "POST /channels/{channel_id}/messages"


async def feed_poll(emulator: FakeDiscord, world: World, feed_id: int) -> str:
    return await emulator.invoke("feed poll", world.owner, world.announcements,
                                 {"feed": str(feed_id)}).answer_text()


async def test_a_post_found_by_feed_poll_is_announced_with_its_thread_at_once(
        emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        server.serve("/feed.xml", rss_document(numbered_items(1, newest=datetime.now(UTC) - timedelta(minutes=1))))
        settings = bot_settings(emulator, tmp_path, allow_private_feeds=True)
        async with running_bot(emulator, settings) as bot:
            await first_cycle(bot)  # the start-up cycle is over; the next one is due in an hour
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            assert "1 new post" in await feed_poll(emulator, world, feed_id)
            # Generous: the target is seconds (bench/README.md has the figure).
            await emulator.wait_until(lambda: emulator.threads_in(world.announcements), timeout=10)
            [message] = announcement_messages(emulator, world.announcements.id)
            assert message.embeds[0]["title"] == "Post 1"
            [thread] = emulator.threads_in(world.announcements)
            assert thread.id == message.id
            await emulator.wait_until(lambda: [m.content for m in emulator.bot_messages(thread)] == [INVITE_LINE])
            row = await bot.database.fetch_one("SELECT state, thread_id FROM announcements")
            assert row is not None and tuple(row) == ("threaded", thread.id)
    finally:
        await server.close()


async def test_a_backlog_drains_at_the_rate_of_the_sliding_window(emulator: FakeDiscord, world: World,
                                                                  tmp_path: Path) -> None:
    window = 1.5
    server = await FeedServer().start()
    try:
        server.serve("/feed.xml", rss_document(numbered_items(5, newest=datetime.now(UTC) - timedelta(minutes=1),
                                                              spacing=timedelta(minutes=1))))
        settings = bot_settings(emulator, tmp_path, allow_private_feeds=True, announcements_per_cycle=2,
                                tuning=replace(TEST_TUNING, announce_flood_window_seconds=window))
        async with running_bot(emulator, settings) as bot:
            await first_cycle(bot)
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            assert "5 new posts" in await feed_poll(emulator, world, feed_id)
            await emulator.wait_until(lambda: len(emulator.threads_in(world.announcements)) == 5, timeout=30)
            titles = [m.embeds[0]["title"] for m in announcement_messages(emulator, world.announcements.id)]
            assert titles == [f"Post {n}" for n in range(1, 6)]  # oldest first
            stamps = [from_db_time(row[0]) for row in await bot.database.fetch_all(
                "SELECT announced_at FROM announcements ORDER BY announced_at")]
            # Two went out at once; never more than two in any window: the third waited for the first
            # to leave the window, the fifth for the third.
            moments = [stamp for stamp in stamps if stamp is not None]
            assert len(moments) == 5
            for earlier, later in zip(moments, moments[2:], strict=False):
                assert later - earlier >= timedelta(seconds=window)
    finally:
        await server.close()


async def test_stopped_during_a_woken_announcement_then_restarted_announces_exactly_once(
        emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        server.serve("/feed.xml", rss_document(numbered_items(1, newest=datetime.now(UTC) - timedelta(minutes=1))))
        settings = bot_settings(emulator, tmp_path, allow_private_feeds=True)
        # The message is sent, but the bot stops before Discord's answer reaches it.
        held = emulator.hold(SEND, lambda request, body: bool((body or {}).get("embeds")), applied=True)
        async with running_bot(emulator, settings) as bot:
            await first_cycle(bot)
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            await feed_poll(emulator, world, feed_id)
            await asyncio.wait_for(held.reached.wait(), timeout=10)
            assert await bot.database.fetch_value("SELECT state FROM announcements") == "pending"
        held.release()
        assert len(announcement_messages(emulator, world.announcements.id)) == 1
        assert emulator.threads_in(world.announcements) == []

        async with running_bot(emulator, settings) as bot:
            await first_cycle(bot)
            await wait_for(lambda: bot.database.fetch_value("SELECT state = 'threaded' FROM announcements"))
            assert "queued" not in await feed_poll(emulator, world, feed_id)  # the post is known
            [message] = announcement_messages(emulator, world.announcements.id)
            [thread] = emulator.threads_in(world.announcements)
            assert thread.id == message.id
            assert [m.content for m in emulator.bot_messages(thread)] == [INVITE_LINE]
            database: Database = bot.database
            assert await database.fetch_value("SELECT count(*) FROM posts") == 1
            assert await database.fetch_value("SELECT count(*) FROM threads") == 1
    finally:
        await server.close()
