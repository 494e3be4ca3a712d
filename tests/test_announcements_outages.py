"""Exact through every fault (issue 17), against the emulator: a Discord outage during which a post
is found ends with one announcement and one thread; a 403/404 fails at once and tells the admins
what to fix; Discord's 160004 and 160006; one feed poll when /feed poll meets the scheduled one."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.__main__ import open_database
from bot.app import ConversationBot
from tests.announcements_support import (
    announcement,
    announcement_messages,
    cog_of,
    first_cycle,
    later,
    queue_post,
    wait_for,
)
from tests.conftest import TEST_TUNING, bot_settings, running_bot
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.emulator import LoggedRequest
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, numbered_items, rss_document

SEND = "POST /channels/{id}/messages"
THREAD = "POST /channels/{id}/messages/{id}/threads"
# The production schedule (1 min doubling to 1 h, for a day) shrunk so minutes pass in milliseconds.
FAST = replace(TEST_TUNING, announce_retry_first_seconds=0.01, announce_retry_longest_seconds=0.08,
               announce_give_up_after_seconds=60.0)


def notices(emulator: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in emulator.bot_messages(channel_id) if not m.embeds]


async def test_a_discord_outage_during_which_a_post_is_found_ends_with_one_announcement(
        emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        now = datetime.now(UTC)
        served = server.serve("/feed.xml", rss_document(numbered_items(1, newest=now - timedelta(hours=2))))
        settings = bot_settings(emulator, tmp_path, tuning=FAST, feed_urls=(server.url("/feed.xml"),),
                                allow_private_feeds=True, announce_channel_id=world.announcements.id,
                                poll_interval_seconds=60)
        async with running_bot(emulator, settings) as bot:
            cog = cog_of(bot)
            await wait_for(lambda: bot.database.fetch_value("SELECT count(*) FROM announcements"))
            await cog.announce_now()
            assert len(announcement_messages(emulator, world.announcements.id)) == 1

            await emulator.start_outage(503)  # REST answers 503 and the gateway connection drops
            served.body = rss_document(numbered_items(2, newest=now - timedelta(minutes=1)))
            feed_id = await bot.database.fetch_value("SELECT id FROM feeds")
            assert (await cog.scheduler.poll_feed(feed_id)).queued == 1
            # The poll woke the announcer: the row may be queued or already pending (503s).
            new_id = await bot.database.fetch_value("SELECT max(id) FROM announcements")
            # Far more tries than the 5 that used to fail it for good, each after a longer wait.
            while (await announcement(bot.database, new_id))["attempts"] < 12:
                await cog.announce_now()
                await asyncio.sleep(0.005)
            row = await announcement(bot.database, new_id)
            assert row["state"] == "pending" and "HTTP 503" in row["error"]
            assert row["next_attempt_at"] is not None and row["retrying_since"] is not None
            assert emulator.requests(SEND, status=503)

            emulator.end_outage()
            await emulator.wait_connected()
            await wait_for(lambda: announced(bot, new_id))
            posts = announcement_messages(emulator, world.announcements.id)
            assert [m.embeds[0]["title"] for m in posts] == ["Post 1", "Post 2"]
            assert len(emulator.threads_in(world.announcements)) == 2
            row = await announcement(bot.database, new_id)
            assert row["thread_id"] == posts[1].id and row["error"] is None and row["next_attempt_at"] is None
            assert await bot.database.fetch_value("SELECT count(*) FROM threads") == 2
    finally:
        await server.close()


async def announced(bot: ConversationBot, announcement_id: int) -> bool:
    """One more announcement cycle; whether the announcement has its thread now."""
    await cog_of(bot).announce_now()
    return bool((await announcement(bot.database, announcement_id))["state"] == "threaded")


async def test_a_403_fails_at_once_and_tells_the_admins_which_permission(emulator: FakeDiscord, world: World,
                                                                        tmp_path: Path) -> None:
    emulator.deny(world.announcements, Perm.SEND_MESSAGES)
    world.guild.system_channel_id = world.news.id  # where a notice goes when the feed's channel is closed
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.announcements.id, title="Closed door")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, post.announcement_id)
        assert row["state"] == "failed" and row["attempts"] == 1 and row["error_code"] == 50013
        assert "missing Send Messages" in row["error"] and f"<#{world.announcements.id}>" in row["error"]
        assert len(emulator.requests(SEND, status=403)) == 1
        [notice] = await emulator.wait_until(lambda: notices(emulator, world.news.id))
        assert "**Closed door**" in notice and f"<#{world.announcements.id}>" in notice
        assert "missing Send Messages" in notice and "/feed retry" in notice
        await cog_of(bot).announce_now()
        assert len(notices(emulator, world.news.id)) == 1  # told once


async def test_a_missing_channel_fails_at_once_and_the_notice_names_it(emulator: FakeDiscord, world: World,
                                                                       tmp_path: Path) -> None:
    world.guild.system_channel_id = world.news.id
    gone = emulator.create_channel(world.guild, "old-posts")
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, gone.id, title="Nowhere")
    await database.close()
    emulator.delete_channel(gone)
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, post.announcement_id)
        assert row["state"] == "failed" and row["attempts"] == 1 and row["error_code"] == 10003
        [notice] = await emulator.wait_until(lambda: notices(emulator, world.news.id))
        assert f"the channel <#{gone.id}> no longer exists" in notice and "**Nowhere**" in notice


async def test_thread_already_created_160004_is_fetched_and_recorded(emulator: FakeDiscord, world: World,
                                                                     tmp_path: Path) -> None:
    def moderator_is_quicker(entry: LoggedRequest) -> None:
        # A moderator starts a thread on the announcement before the bot's own request arrives.
        if entry.method == "POST" and entry.path.endswith("/messages") and entry.status == 200 \
                and entry.response.get("embeds"):
            emulator.create_thread(world.announcements, "Talk", world.owner, message=int(entry.response["id"]))

    emulator.observers.append(moderator_is_quicker)
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.announcements.id, title="Race")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, post.announcement_id)
        [message] = announcement_messages(emulator, world.announcements.id)
        [thread] = emulator.threads_in(world.announcements)
        assert [r.response["code"] for r in emulator.requests(THREAD)] == [160004]
        assert row["state"] == "threaded" and row["thread_id"] == thread.id == message.id
        assert await bot.database.fetch_value("SELECT thread_id FROM threads") == thread.id


async def test_the_active_thread_limit_160006_makes_posts_wait_their_turn(emulator: FakeDiscord, world: World,
                                                                          tmp_path: Path) -> None:
    world.guild.max_active_threads = 1
    busy = emulator.create_thread(world.news, "The one active thread", world.owner)
    settings = bot_settings(emulator, tmp_path, tuning=FAST)
    async with running_bot(emulator, settings) as bot:
        cog = cog_of(bot)
        await first_cycle(bot)
        first = await queue_post(bot.database, world.guild.id, world.announcements.id, title="First",
                                 published_at=later(0))
        second = await queue_post(bot.database, world.guild.id, world.announcements.id, title="Second",
                                  published_at=later(1))
        for _ in range(5):
            await cog.announce_now()
            await asyncio.sleep(0.02)
        row = await announcement(bot.database, first.announcement_id)
        assert row["state"] == "sent" and row["error_code"] == 160006 and row["retrying_since"] is None
        assert (await announcement(bot.database, second.announcement_id))["state"] == "queued"  # no thread: no send
        assert len(announcement_messages(emulator, world.announcements.id)) == 1
        [notice] = notices(emulator, world.announcements.id)
        assert "**First**" in notice and "active threads" in notice and "160006" in notice

        emulator.archive_thread(busy)  # room for one thread
        await wait_for(lambda: announced(bot, first.announcement_id))
        world.guild.max_active_threads = 10
        await wait_for(lambda: announced(bot, second.announcement_id))
        messages = announcement_messages(emulator, world.announcements.id)
        assert [m.embeds[0]["title"] for m in messages] == ["First", "Second"]
        assert {t.id for t in emulator.threads_in(world.announcements)} == {m.id for m in messages}
        assert len(notices(emulator, world.announcements.id)) == 1


async def test_feed_poll_during_the_scheduled_poll_fetches_the_feed_once(emulator: FakeDiscord, world: World,
                                                                         tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        server.slow("/feed.xml", 1.0, rss_document(numbered_items(1, newest=datetime.now(UTC))))
        settings = bot_settings(emulator, tmp_path, feed_urls=(server.url("/feed.xml"),), allow_private_feeds=True,
                                 announce_channel_id=world.announcements.id, poll_interval_seconds=60)
        async with running_bot(emulator, settings) as bot:
            await bot.tree.sync()
            await wait_for(lambda: server.hits("/feed.xml") == 1)  # the loop's poll is under way
            handle = emulator.invoke("feed poll", world.owner, world.announcements)
            answer = await handle.answer_text()
            assert "Polled now" in answer
            assert server.hits("/feed.xml") == 1
            feed = await bot.database.fetch_one("SELECT consecutive_failures, initialized FROM feeds")
            assert feed is not None and feed["initialized"] == 1 and feed["consecutive_failures"] == 0
    finally:
        await server.close()


async def test_a_refused_command_names_the_permission_it_needs(emulator: FakeDiscord, world: World,
                                                               tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await bot.tree.sync()
        for name in ("Hide from blog", "feed"):
            emulator.commands()[name].default_member_permissions = None  # a server opened them to everyone
        target = emulator.send_message(world.announcements, world.bob, "hello")
        refused = await emulator.invoke_message_command("Hide from blog", target, world.alice).answer_text()
        assert refused == "You need the Manage Messages permission to use this command."
        refused = await emulator.invoke("feed list", world.alice, world.announcements).answer_text()
        assert refused == "You need the Manage Server permission to use this command."
