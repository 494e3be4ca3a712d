"""/post show's "Open a discussion thread": a post that never got a thread (its feed's filter dropped
it, or it was published before the feed was added) is announced on a member's request, in its
feed's channel, by the announcer (one message, one thread, the invitation line), through the
Discord emulator."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.announce.machine import INVITE_LINE
from bot.lookup.open_thread import NOT_ALLOWED
from tests.announcements_support import (
    add_feed,
    announcement_messages,
    cog_of,
    first_cycle,
    queue_post,
    wait_for,
)
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.fakediscord.models import Message, Perm
from tests.feeds_support import FeedServer, Item, rss_document
from tests.test_lookup_commands import buttons

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

NOW = datetime.now(UTC)
OPEN = "Open a discussion thread"


async def show(emulator: FakeDiscord, world: World, user: Any, post_id: int) -> Message:
    return await emulator.invoke("post show", user, world.announcements, {"post": str(post_id)}).wait_original()


async def click(emulator: FakeDiscord, message: Message, user: Any) -> tuple[int, str]:
    """Press the message's Open button as ``user``: the response type and the (private) answer."""
    handle = emulator.click(message, buttons(message)[OPEN]["custom_id"], user)
    kind = await handle.response()
    if kind == 7:  # the button was taken off the message; the answer is a private follow-up
        [followup] = await handle.wait_followups()
        assert followup.ephemeral
        return kind, followup.content
    return kind, await handle.answer_text()


async def post_id_of(database: Any, title: str) -> int:
    return int(await wait_for(lambda: database.fetch_value("SELECT id FROM posts WHERE title = ?", (title,))))


async def state_of(database: Any, post_id: int) -> str:
    return str(await database.fetch_value("SELECT state FROM announcements WHERE post_id = ?", (post_id,)))


def threads_named(emulator: FakeDiscord, world: World, title: str) -> list[Any]:
    return [t for t in emulator.threads_in(world.announcements) if t.name == title]


async def test_a_filtered_post_gets_its_thread_from_post_show(emulator: FakeDiscord, world: World,
                                                             tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        server.serve("/feed.xml", rss_document([
            Item("Python news", "https://blog.example.com/1/", "post-1", NOW - timedelta(minutes=1)),
            Item("Cooking pasta", "https://blog.example.com/2/", "post-2", NOW - timedelta(minutes=2))]))
        async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
            await first_cycle(bot)
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            await emulator.invoke("feed filter", world.owner, world.announcements,
                                  {"feed": str(feed_id), "exclude": "pasta"}).answer_text(timeout=15)
            await emulator.invoke("feed poll", world.owner, world.announcements,
                                  {"feed": str(feed_id)}).answer_text(timeout=15)
            await wait_for(lambda: bot.database.fetch_value(
                "SELECT count(*) = 1 FROM announcements WHERE state = 'threaded'"))
            pasta = await post_id_of(bot.database, "Cooking pasta")
            news = await post_id_of(bot.database, "Python news")
            assert await state_of(bot.database, pasta) == "skipped"

            # The button is offered for the post without a thread only, to members who may start threads.
            assert OPEN not in buttons(await show(emulator, world, world.alice, news))
            emulator.deny(world.announcements, Perm.CREATE_PUBLIC_THREADS, target=world.bob)
            assert OPEN not in buttons(await show(emulator, world, world.bob, pasta))
            first = await show(emulator, world, world.alice, pasta)
            second = await show(emulator, world, world.alice, pasta)
            assert OPEN in buttons(first) and OPEN in buttons(second) and not first.ephemeral

            # Someone who may not start threads is refused (privately) and nothing changes.
            kind, text = await click(emulator, first, world.bob)
            assert kind == 4 and text == NOT_ALLOWED
            assert await state_of(bot.database, pasta) == "skipped"

            kind, text = await click(emulator, first, world.alice)
            assert kind == 7 and text == (f"**Cooking pasta** is queued for announcement in <#{world.announcements.id}>"
                                          "; its discussion thread opens there as soon as the channel's "
                                          "announcement rate allows.")
            assert OPEN not in buttons(emulator.message(first.id))  # taken off: nothing left to open
            await wait_for(lambda: bot.database.fetch_value(
                "SELECT state = 'threaded' FROM announcements WHERE post_id = ?", (pasta,)))
            [message] = announcement_messages(emulator, world.announcements.id, "https://blog.example.com/2/")
            [thread] = threads_named(emulator, world, "Cooking pasta")
            assert thread.id == message.id
            await emulator.wait_until(lambda: [m.content for m in emulator.bot_messages(thread)
                                               if m.id != thread.id] == [INVITE_LINE])
            assert await bot.database.fetch_value("SELECT thread_id FROM threads WHERE post_id = ?",
                                                  (pasta,)) == thread.id

            # The other answer's button now points at the thread; no second announcement.
            kind, text = await click(emulator, second, world.alice)
            assert kind == 7
            assert text == (f"**Cooking pasta** already has a discussion thread: [Join the discussion]"
                            f"(<https://discord.com/channels/{world.guild.id}/{thread.id}>)")
            assert len(announcement_messages(emulator, world.announcements.id, "https://blog.example.com/2/")) == 1
            assert len(threads_named(emulator, world, "Cooking pasta")) == 1
            assert OPEN not in buttons(await show(emulator, world, world.alice, pasta))
    finally:
        await server.close()


async def test_the_button_works_after_a_restart_and_knows_a_removed_feed(emulator: FakeDiscord, world: World,
                                                                         tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        feed_id = await add_feed(bot.database, world.guild.id, world.forum.id, channel_kind="forum")
        old = await queue_post(bot.database, world.guild.id, world.forum.id, title="Before the feed was added",
                               feed_id=feed_id, state="skipped")
        orphan = await queue_post(bot.database, world.guild.id, world.forum.id, title="Of a removed feed",
                                  feed_id=feed_id, state="skipped")
        shown = await show(emulator, world, world.owner, old.post_id)
        gone = await show(emulator, world, world.owner, orphan.post_id)
        assert OPEN in buttons(shown) and OPEN in buttons(gone)

    async with running_bot(emulator, settings) as bot:  # a new process: the buttons still work
        await first_cycle(bot)
        kind, text = await click(emulator, shown, world.owner)
        assert kind == 7 and f"is queued for announcement in <#{world.forum.id}>" in text
        await wait_for(lambda: bot.database.fetch_value(
            "SELECT state = 'threaded' FROM announcements WHERE post_id = ?", (old.post_id,)))
        [forum_post] = [t for t in emulator.threads_in(world.forum) if t.name == "Before the feed was added"]
        assert await bot.database.fetch_value("SELECT thread_id FROM threads WHERE post_id = ?",
                                              (old.post_id,)) == forum_post.id

        await bot.database.write(lambda c: c.execute("DELETE FROM feeds WHERE id = ?", (feed_id,)))
        assert OPEN not in buttons(await show(emulator, world, world.owner, orphan.post_id))
        kind, text = await click(emulator, gone, world.owner)
        assert kind == 4 and text == ("**Of a removed feed** has no feed any more (it was removed), so there is "
                                      "no channel to open its thread in.")
        assert await state_of(bot.database, orphan.post_id) == "skipped"
        assert [t.name for t in emulator.threads_in(world.forum)] == ["Before the feed was added"]


async def test_a_requested_thread_waits_for_the_channels_rate(emulator: FakeDiscord, world: World,
                                                              tmp_path: Path) -> None:
    # One announcement per channel per hour: the second requested post is queued, not sent.
    tuning = replace(TEST_TUNING, announce_flood_window_seconds=3600.0)
    settings = bot_settings(emulator, tmp_path, tuning=tuning, announcements_per_cycle=1)
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id)
        posts = [await queue_post(bot.database, world.guild.id, world.announcements.id, title=f"Skipped {n}",
                                  feed_id=feed_id, state="skipped") for n in (1, 2)]
        answers = [await show(emulator, world, world.alice, post.post_id) for post in posts]
        assert (await click(emulator, answers[0], world.alice))[0] == 7
        await wait_for(lambda: bot.database.fetch_value(
            "SELECT state = 'threaded' FROM announcements WHERE post_id = ?", (posts[0].post_id,)))
        kind, text = await click(emulator, answers[1], world.alice)
        assert kind == 7 and "is queued for announcement" in text
        report = await cog_of(bot).announce_now()  # a whole cycle that sees it queued: the rate holds it back
        assert report.announced == [] and report.room_at is not None
        assert await state_of(bot.database, posts[1].post_id) == "queued"
        assert [m.embeds[0]["title"] for m in announcement_messages(emulator, world.announcements.id)] == [
            "Skipped 1"]
