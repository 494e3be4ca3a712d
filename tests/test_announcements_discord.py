"""Announcements against the Discord emulator: message, thread, forum posts, mentions, floods, edits,
failures."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.__main__ import open_database
from bot.announce.machine import INVITE_LINE
from bot.storage.announcements import failed_announcements
from tests.announcements_support import (
    add_feed,
    announcement,
    announcement_messages,
    cog_of,
    first_cycle,
    later,
    queue_post,
    thread_rows,
    update_post,
)
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_log, bot_settings, running_bot
from tests.fakediscord import ChannelType, FakeDiscord
from tests.fakediscord.harness import World

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL


async def test_new_post_becomes_a_message_with_its_thread(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.announcements.id, title="Writing a feed reader",
                            categories=["python", "Feeds"], image_url="https://blog.example/cover.png",
                            summary="How the **reader** works.")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        messages = announcement_messages(emulator, world.announcements.id)
        assert len(messages) == 1
        embed = messages[0].embeds[0]
        assert embed["title"] == "Writing a feed reader"
        assert embed["url"] == post.url
        assert embed["author"]["name"] == "Ada"
        assert embed["description"] == "How the **reader** works."
        assert embed["image"]["url"] == "https://blog.example/cover.png"
        assert embed["footer"]["text"] == "Example Blog"
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Categories"] == "python, Feeds"
        assert fields["Published"].startswith("<t:") and fields["Published"].endswith(":f>")
        assert messages[0].allowed_mentions == {"parse": []} or messages[0].allowed_mentions["parse"] == []
        threads = emulator.threads_in(world.announcements)
        assert [t.id for t in threads] == [messages[0].id]
        assert threads[0].name == "Writing a feed reader"
        assert threads[0].metadata is not None and threads[0].metadata.auto_archive_duration == 10080
        in_thread = emulator.bot_messages(threads[0].id)
        assert [m.content for m in in_thread] == [INVITE_LINE]
        row = await announcement(bot.database, post.announcement_id)
        assert row["state"] == "threaded" and row["message_id"] == messages[0].id
        assert row["thread_id"] == threads[0].id
        stored = await thread_rows(bot.database)
        assert [(t["thread_id"], t["post_id"], t["parent_channel_id"], t["starter_message_id"], t["name"])
                for t in stored] == [(threads[0].id, post.post_id, world.announcements.id, messages[0].id,
                                      "Writing a feed reader")]
        assert await failed_announcements(bot.database, world.guild.id) == []
        assert bot_log(bot).count("announcement cycle done: 1 announced, 0 failed") == 1


async def test_news_channel_gets_an_announcement_thread(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path, thread_auto_archive_minutes=1440)
    database = await open_database(settings)
    await queue_post(database, world.guild.id, world.news.id, title="Release notes")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        [message] = announcement_messages(emulator, world.news.id)
        [thread] = emulator.threads_in(world.news)
        assert thread.id == message.id and thread.type == ChannelType.NEWS_THREAD
        assert thread.metadata is not None and thread.metadata.auto_archive_duration == 1440


async def test_guild_settings_override_archive_duration_and_per_cycle(emulator: FakeDiscord, world: World,
                                                                      tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    await database.write(lambda c: c.execute(
        "INSERT INTO guild_settings (guild_id, announcements_per_cycle, thread_auto_archive_minutes, updated_at) "
        "VALUES (?, 2, 60, '2026-01-01T00:00:00+00:00')", (world.guild.id,)))
    for index in range(4):
        await queue_post(database, world.guild.id, world.announcements.id, title=f"Post {index}",
                         published_at=later(index))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        assert len(announcement_messages(emulator, world.announcements.id)) == 2
        assert {t.metadata.auto_archive_duration for t in emulator.threads_in(world.announcements)
                if t.metadata} == {60}


async def test_forum_post_gets_matching_existing_tags(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    tagged = await queue_post(database, world.guild.id, world.forum.id, title="Typed Python bots",
                              categories=["PYTHON", " Discord ", "cooking"], published_at=later(0))
    untagged = await queue_post(database, world.guild.id, world.forum.id, title="Gardening",
                                categories=["plants"], published_at=later(1))
    strict = await queue_post(database, world.guild.id, world.strict_forum.id, title="No matching tag",
                              categories=["plants"], published_at=later(2))
    await database.close()
    tags_before = [dict(t) for t in emulator.channel(world.forum).available_tags]
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        by_name = {t.name: t for t in emulator.threads_in(world.forum)}
        assert set(by_name) == {"Typed Python bots", "Gardening"}
        assert by_name["Typed Python bots"].applied_tags == [emulator.tag_id(world.forum, "python"),
                                                              emulator.tag_id(world.forum, "discord")]
        assert by_name["Gardening"].applied_tags == []
        [strict_thread] = emulator.threads_in(world.strict_forum)
        first_tag = int(emulator.channel(world.strict_forum).available_tags[0]["id"])
        assert strict_thread.applied_tags == [first_tag]
        assert [dict(t) for t in emulator.channel(world.forum).available_tags] == tags_before  # none created
        for post, forum in ((tagged, world.forum), (untagged, world.forum), (strict, world.strict_forum)):
            row = await announcement(bot.database, post.announcement_id)
            assert row["state"] == "threaded"
            thread = emulator.channel(row["thread_id"])
            assert thread.parent_id == forum.id
            starter, invite = emulator.messages(thread)
            assert starter.id == thread.id and starter.embeds[0]["url"] == post.url
            assert invite.content == INVITE_LINE
        assert len(await thread_rows(bot.database)) == 3


async def test_mentions_in_a_title_ping_nobody_and_show_as_text(emulator: FakeDiscord, world: World,
                                                                 tmp_path: Path) -> None:
    title = f"@everyone <@&1> <@&{world.readers.id}> @here <script>alert(1)</script>"
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.announcements.id, title=title,
                            summary=f"Hi @everyone and <@&{world.readers.id}>", categories=["@here"])
    await queue_post(database, world.guild.id, world.forum.id, title=title, url=post.url + "?forum")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        sent = emulator.bot_messages()
        assert len(sent) == 4  # two announcements, two invitations
        for message in sent:
            assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
            assert not message.allowed_mentions.get("roles") and not message.allowed_mentions.get("users")
            assert message.mention_everyone is False and message.mention_roles == [] and message.mentions == []
            assert message.content in ("", INVITE_LINE)
        [message] = announcement_messages(emulator, world.announcements.id)
        assert message.embeds[0]["title"] == title  # shown literally: embed titles render no mentions
        assert "@everyone" not in message.embeds[0]["description"]  # made inert where Discord renders them
        assert emulator.channel(message.id).name == title


async def test_a_300_character_title_is_cut_at_a_word(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    words = [f"word{n:03d}" for n in range(40)]
    title = " ".join(words)[:300]
    assert len(title) == 300
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    await queue_post(database, world.guild.id, world.announcements.id, title=title)
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        [message] = announcement_messages(emulator, world.announcements.id)
        shown = message.embeds[0]["title"]
        assert len(shown) <= 256 and shown.endswith("…")
        assert title.startswith(shown[:-1]) and title[len(shown) - 1] == " "
        name = emulator.channel(message.id).name
        assert 0 < len(name) <= 100 and name.endswith("…") and title[len(name) - 1] == " "


async def test_fifty_new_items_go_out_five_per_cycle_oldest_first(emulator: FakeDiscord, world: World,
                                                                  tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    order = list(range(50))
    random.Random(5).shuffle(order)  # inserted out of order: the publication time decides
    for minute in order:
        await queue_post(database, world.guild.id, world.announcements.id, title=f"Item {minute:02d}",
                         published_at=later(minute))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        cog = cog_of(bot)
        seen = [len(announcement_messages(emulator, world.announcements.id))]
        for _ in range(9):
            await cog.announce_now()
            seen.append(len(announcement_messages(emulator, world.announcements.id)))
        assert seen == list(range(5, 55, 5))
        await cog.announce_now()  # nothing left: nothing more is sent
        messages = announcement_messages(emulator, world.announcements.id)
        assert [m.embeds[0]["title"] for m in messages] == [f"Item {n:02d}" for n in range(50)]
        assert len(emulator.threads_in(world.announcements)) == 50


async def test_the_budget_also_holds_across_cycles_within_the_poll_interval(emulator: FakeDiscord, world: World,
                                                                           tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path,
                            tuning=replace(TEST_TUNING, announce_flood_window_seconds=600.0))
    database = await open_database(settings)
    for minute in range(12):
        await queue_post(database, world.guild.id, world.announcements.id, title=f"Item {minute:02d}",
                         published_at=later(minute))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        cog = cog_of(bot)
        assert len(announcement_messages(emulator, world.announcements.id)) == 5
        await cog.announce_now()  # same poll interval: the channel's budget is spent
        assert len(announcement_messages(emulator, world.announcements.id)) == 5
        cog.announcer.clock = lambda: datetime.now(UTC) + timedelta(seconds=601)  # the interval has passed
        await cog.announce_now()
        titles = [m.embeds[0]["title"] for m in announcement_messages(emulator, world.announcements.id)]
        assert titles == [f"Item {n:02d}" for n in range(10)]


async def test_ping_role_is_the_only_mention_and_only_when_configured(emulator: FakeDiscord, world: World,
                                                                      tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    pinging = await add_feed(database, world.guild.id, world.announcements.id, ping_role_id=world.readers.id)
    quiet = await add_feed(database, world.guild.id, world.announcements.id, url="https://other.example/feed")
    loud = await queue_post(database, world.guild.id, world.announcements.id, title="With ping @everyone",
                            feed_id=pinging, published_at=later(0))
    silent = await queue_post(database, world.guild.id, world.announcements.id, title="Without ping",
                              feed_id=quiet, published_at=later(1))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        [loud_message] = announcement_messages(emulator, world.announcements.id, loud.url)
        assert loud_message.content == f"<@&{world.readers.id}>"
        assert loud_message.allowed_mentions is not None
        assert loud_message.allowed_mentions["parse"] == ["roles"]  # and the content holds only that role
        assert loud_message.mention_roles == [world.readers.id] and loud_message.mention_everyone is False
        [silent_message] = announcement_messages(emulator, world.announcements.id, silent.url)
        assert silent_message.content == "" and silent_message.mention_roles == []
        assert silent_message.allowed_mentions["parse"] == []


async def test_updated_post_edits_the_embed_and_renames_the_thread(emulator: FakeDiscord, world: World,
                                                                   tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    renamed = await queue_post(database, world.guild.id, world.announcements.id, title="Draft title",
                               published_at=later(0))
    archived = await queue_post(database, world.guild.id, world.announcements.id, title="Old news",
                                published_at=later(1))
    locked = await queue_post(database, world.guild.id, world.announcements.id, title="Closed topic",
                              published_at=later(2))
    forum = await queue_post(database, world.guild.id, world.forum.id, title="Forum draft", published_at=later(3))
    same_title = await queue_post(database, world.guild.id, world.announcements.id, title="Typo fix",
                                  published_at=later(4))
    archived_forum = await queue_post(database, world.guild.id, world.forum.id, title="Archived forum post",
                                      published_at=later(5))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        rows = {p.title: await announcement(bot.database, p.announcement_id)
                for p in (renamed, archived, locked, forum, same_title, archived_forum)}
        emulator.archive_thread(rows["Old news"]["thread_id"])
        emulator.lock_thread(rows["Closed topic"]["thread_id"])
        emulator.archive_thread(rows["Archived forum post"]["thread_id"])
        await update_post(bot.database, renamed, title="Final title", summary="Now finished.")
        await update_post(bot.database, archived, title="Old news, revisited")
        await update_post(bot.database, locked, title="Closed topic, renamed")
        await update_post(bot.database, forum, title="Forum final")
        await update_post(bot.database, same_title, title="Typo fix", summary="Fixed the typo.")
        await update_post(bot.database, archived_forum, title="Archived forum post", summary="New excerpt.")
        report = await cog_of(bot).announce_now()
        assert sorted(report.edited) == sorted(p.announcement_id for p in (renamed, archived, locked, forum,
                                                                             same_title, archived_forum))

        message = emulator.message(rows["Draft title"]["message_id"])
        assert message.embeds[0]["title"] == "Final title" and message.embeds[0]["description"] == "Now finished."
        thread = emulator.channel(rows["Draft title"]["thread_id"])
        assert thread.name == "Final title"
        assert emulator.bot_messages(thread)[-1].content == "The post was renamed: **Final title**"

        old = emulator.channel(rows["Old news"]["thread_id"])
        assert old.name == "Old news, revisited" and old.metadata is not None and not old.metadata.archived

        closed = emulator.channel(rows["Closed topic"]["thread_id"])
        assert closed.name == "Closed topic" and [m.content for m in emulator.bot_messages(closed)] == [INVITE_LINE]
        # The locked thread is left alone; the announcement in the channel is still corrected.
        assert emulator.message(rows["Closed topic"]["message_id"]).embeds[0]["title"] == "Closed topic, renamed"
        assert closed.metadata is not None and closed.metadata.locked

        archived_post = emulator.channel(rows["Archived forum post"]["thread_id"])
        assert archived_post.metadata is not None and not archived_post.metadata.archived
        assert archived_post.name == "Archived forum post"  # same title: unarchived only to edit its starter
        assert emulator.message(archived_post.id).embeds[0]["description"] == "New excerpt."
        unarchive = [r for r in emulator.requests("PATCH /channels/{id}") if r.path.endswith(str(archived_post.id))]
        assert [r.body for r in unarchive] == [{"archived": False}]

        forum_thread = emulator.channel(rows["Forum draft"]["thread_id"])
        assert forum_thread.name == "Forum final"
        assert emulator.message(forum_thread.id).embeds[0]["title"] == "Forum final"

        typo = emulator.channel(rows["Typo fix"]["thread_id"])
        assert emulator.message(typo.id).embeds[0]["description"] == "Fixed the typo."
        assert [m.content for m in emulator.bot_messages(typo)] == [INVITE_LINE]  # no notice without a rename

        names = {row["post_id"]: row["name"] for row in await thread_rows(bot.database)}
        assert names[renamed.post_id] == "Final title" and names[locked.post_id] == "Closed topic"
        flags = await bot.database.fetch_all("SELECT needs_edit FROM announcements")
        assert {row["needs_edit"] for row in flags} == {0}
        edits_before = len(emulator.requests("PATCH /channels/{id}/messages/{id}"))
        await cog_of(bot).announce_now()
        assert len(emulator.requests("PATCH /channels/{id}/messages/{id}")) == edits_before


async def test_a_rate_limited_send_is_retried_and_sent_once(emulator: FakeDiscord, world: World,
                                                            tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.announcements.id, title="Busy day")
    await database.close()
    emulator.rate_limit_next(3, "POST /channels/{id}/messages")
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        assert len(announcement_messages(emulator, world.announcements.id, post.url)) == 1
        assert (await announcement(bot.database, post.announcement_id))["state"] == "threaded"
        assert emulator.ratelimits.served_429s >= 3
