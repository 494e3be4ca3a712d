"""Failures against the emulator: missing permissions, a deleted channel and a thread that cannot
be created are recorded with a reason, not retried, reported once; a retry after the fix sends once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.__main__ import open_database
from bot.storage.announcements import failed_announcements, retry_failed
from tests.announcements_support import (
    announcement,
    announcement_messages,
    cog_of,
    first_cycle,
    later,
    queue_post,
)
from tests.conftest import BOTH_ENGINES, bot_settings, running_bot
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

SEND = "POST /channels/{id}/messages"
THREAD = "POST /channels/{id}/messages/{id}/threads"


def failure_reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "bot.announce.machine" and r.levelno == logging.WARNING and "failed" in r.getMessage()]


async def test_missing_permissions_recorded_reported_once_and_not_retried(
        emulator: FakeDiscord, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    emulator.deny(world.announcements, Perm.SEND_MESSAGES)
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    posts = [await queue_post(database, world.guild.id, world.announcements.id, title=f"Post {n}",
                              published_at=later(n)) for n in range(7)]
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        for post in posts:
            row = await announcement(bot.database, post.announcement_id)
            assert row["state"] == "failed" and row["error_code"] == 50013
            assert "lacks a permission" in row["error"] and "Send Messages" in row["error"]
            assert row["error_reported"] == 1
        assert len(emulator.requests(SEND, status=403)) == 1  # one try; the channel's queue failed with it
        failed = await failed_announcements(bot.database, world.guild.id)
        assert {f.id for f in failed} == {p.announcement_id for p in posts}
        assert failed[0].error_code == 50013 and failed[0].title.startswith("Post ")
        assert len(failure_reports(caplog)) == 1 and "50013" in failure_reports(caplog)[0]

        for _ in range(3):
            await cog_of(bot).announce_now()
        assert len(emulator.requests(SEND)) == 1 and len(failure_reports(caplog)) == 1

        # The admins fix the permission and ask for a retry: each post goes out once.
        emulator.clear_overwrite(world.announcements)
        await bot.tree.sync()  # these tests start the bot without syncing; /feed retry must be registered
        handle = emulator.invoke("feed retry", world.owner, world.announcements)
        assert await handle.response() == 4
        assert "Trying 7 failed announcements again" in await handle.answer_text()
        await cog_of(bot).announce_now()
        await cog_of(bot).announce_now()
        messages = announcement_messages(emulator, world.announcements.id)
        assert [m.embeds[0]["title"] for m in messages] == [f"Post {n}" for n in range(7)]
        assert await failed_announcements(bot.database, world.guild.id) == []


async def test_deleted_channel_is_recorded_and_reported_once(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    gone = await queue_post(database, world.guild.id, world.news.id, title="Into the void")
    fine = await queue_post(database, world.guild.id, world.announcements.id, title="Still here")
    await database.close()
    emulator.delete_channel(world.news)
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, gone.announcement_id)
        assert row["state"] == "failed" and row["error_code"] == 10003
        assert "no longer exists" in row["error"]
        assert (await announcement(bot.database, fine.announcement_id))["state"] == "threaded"
        await cog_of(bot).announce_now()
        reports = failure_reports(caplog)
        assert len(reports) == 1 and "10003" in reports[0]
        [failed] = await failed_announcements(bot.database, world.guild.id)
        assert failed.id == gone.announcement_id and failed.canonical_url == gone.url


async def test_thread_that_cannot_be_created_is_recorded_and_retry_reuses_the_message(
        emulator: FakeDiscord, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    emulator.deny(world.announcements, Perm.CREATE_PUBLIC_THREADS)
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    first = await queue_post(database, world.guild.id, world.announcements.id, title="No thread",
                             published_at=later(0))
    second = await queue_post(database, world.guild.id, world.announcements.id, title="Waiting",
                              published_at=later(1))
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, first.announcement_id)
        [message] = announcement_messages(emulator, world.announcements.id)
        assert row["state"] == "failed" and row["error_code"] == 50013 and row["message_id"] == message.id
        assert "create the thread" in row["error"]
        # The rest of the channel's queue is held back rather than sent without threads.
        assert (await announcement(bot.database, second.announcement_id))["state"] == "failed"
        await cog_of(bot).announce_now()
        assert len(emulator.requests(THREAD)) == 1 and len(failure_reports(caplog)) == 1

        emulator.clear_overwrite(world.announcements)
        assert await retry_failed(bot.database, world.guild.id) == 2
        await cog_of(bot).announce_now()
        messages = announcement_messages(emulator, world.announcements.id)
        assert [m.embeds[0]["title"] for m in messages] == ["No thread", "Waiting"]
        assert messages[0].id == message.id
        assert {t.id for t in emulator.threads_in(world.announcements)} == {m.id for m in messages}


async def test_forum_without_permission_fails_with_forum_advice(emulator: FakeDiscord, world: World,
                                                                tmp_path: Path) -> None:
    emulator.deny(world.forum, Perm.SEND_MESSAGES)
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    post = await queue_post(database, world.guild.id, world.forum.id, title="Forum post")
    await database.close()
    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        row = await announcement(bot.database, post.announcement_id)
        assert row["state"] == "failed" and row["error_code"] == 50013
        assert "create the forum post" in row["error"] and "Create Posts" in row["error"]
        assert emulator.threads_in(world.forum) == []
