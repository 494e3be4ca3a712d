"""Discussions exact through faults (issue 17): a thread's first seconds, time offline, old threads.

Our ConversationBot against the Discord emulator; observed through Discord, the database and the log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.__main__ import open_database
from bot.announce.machine import INVITE_LINE
from bot.storage import Database
from bot.storage import comments as store
from bot.storage.blog import discussion_comments
from tests.announcements_support import later, queue_post
from tests.conftest import BOTH_ENGINES, bot_log, bot_settings, running_bot
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

THREAD_FROM_MESSAGE = "POST /channels/{channel_id}/messages/{message_id}/threads"
HISTORY = "GET /channels/{channel_id}/messages"


async def post_thread(emu: FakeDiscord, world: World, database: Database, title: str) -> tuple[Any, int]:
    """An announced post's thread as the announcer leaves it; returns the thread and the post id."""
    starter = emu.send_message(world.announcements, emu.bot, f"New post: {title}")
    thread = emu.create_thread(world.announcements, title, emu.bot, message=starter)
    post_id = await add_post_thread(database, thread.id, title=title, guild_id=world.guild.id,
                                    parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    return thread, post_id


def history_requests(emu: FakeDiscord, thread: Any) -> int:
    return sum(1 for r in emu.requests(HISTORY) if r.path.rstrip("/").split("/")[-2] == str(thread.id))


async def test_replies_in_a_threads_first_moments_are_stored(emulator: FakeDiscord, world: World,
                                                             tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    await queue_post(database, world.guild.id, world.announcements.id, title="Held post", published_at=later(0))
    await queue_post(database, world.guild.id, world.announcements.id, title="Quick post", published_at=later(1))
    await database.close()
    # Discord creates the thread (THREAD_CREATE reaches the bot) but its answer to the bot waits:
    # people reply, edit and react before the announcer even knows the thread's id.
    held = emulator.hold(THREAD_FROM_MESSAGE, lambda request, body: (body or {}).get("name") == "Held post",
                         applied=True)
    async with running_bot(emulator, settings) as bot:
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        thread = await emulator.wait_until(
            lambda: next((t for t in emulator.threads_in(world.announcements) if t.name == "Held post"), None))
        first = emulator.send_message(thread, world.alice, "first!")
        await asyncio.sleep(0.1)
        second = emulator.send_message(thread, world.bob, "second", reply_to=first)
        emulator.edit_message(first, "first! (edited)")
        emulator.add_reaction(second, world.alice, "👍")
        await asyncio.sleep(0.2)
        held.release()
        await eventually(lambda: store.get_comment(bot.database, second.id), what="the held replies")

        # The next post's thread, announced without trouble: a reply 0.1 s after it appears.
        quick = await emulator.wait_until(
            lambda: next((t for t in emulator.threads_in(world.announcements) if t.name == "Quick post"), None),
            timeout=30)
        await asyncio.sleep(0.1)
        reply = emulator.send_message(quick, world.alice, "quick reply")
        stored = await eventually(lambda: store.get_comment(bot.database, reply.id), timeout=15,
                                  what="the quick reply")
        assert stored.content == "quick reply"  # type: ignore[attr-defined]

        edited = await store.get_comment(bot.database, first.id)
        assert edited is not None and edited.content == "first! (edited)"
        await eventually(lambda: store.comment_reactions(bot.database, second.id), what="the reaction")
        assert await store.comment_reactions(bot.database, second.id) == {"👍": 1}
        # The invitation line still follows in both threads.
        await emulator.wait_until(lambda: [m.content for m in emulator.bot_messages(quick)] == [INVITE_LINE])
        assert [m.content for m in emulator.bot_messages(thread)] == [INVITE_LINE]


async def test_offline_deletes_edits_and_reactions_are_applied_by_the_start_up_catch_up(
        emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    thread, post_id = await post_thread(emulator, world, database, "A busy post")
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        items = [emulator.send_message(thread, world.alice, f"line {n}") for n in range(150)]
        await eventually(lambda: store.get_comment(database, items[-1].id), what="the messages")
        await bot_log(bot).wait_for("catch-up of")
    # Offline: the oldest messages (far beyond the newest 100) are deleted, edited and reacted to.
    emulator.delete_message(items[0])
    emulator.edit_message(items[1], "line 1, edited offline")
    emulator.add_reaction(items[2], world.bob, "🎉")
    emulator.delete_message(items[-1])

    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await bot_log(bot).wait_for(f"caught up thread {thread.id}: 0 new, 1 edited, 2 deleted")
        served = {c.message_id: c for c in await discussion_comments(database, post_id)}
        assert served[items[0].id].deleted and served[items[0].id].content == ""
        assert served[items[-1].id].deleted
        assert served[items[1].id].content == "line 1, edited offline"
        assert served[items[1].id].edited_at is not None
        assert [(r.emoji, r.count) for r in served[items[2].id].reactions] == [("🎉", 1)]
        assert bot_log(bot).count("reconciled thread") == 0  # the catch-up did it, not the reconcile


async def test_the_reconcile_leaves_old_archived_threads_until_they_are_unarchived(
        emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    with emulator.backdated(days=30):
        old, _ = await post_thread(emulator, world, database, "An old post")
        said = [emulator.send_message(old, world.alice, f"old {n}") for n in range(3)]
    emulator.archive_thread(old)
    recent, _ = await post_thread(emulator, world, database, "A recent post")
    emulator.send_message(recent, world.bob, "recent")

    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        cog: Any = bot.get_cog("Discussions")
        # Not in the catch-up window; the first reconcile walks it once (it never was) ...
        await bot_log(bot).wait_for("reconcile of 2 discussion thread(s) done", timeout=15)
        assert [c.message_id for c in await store.thread_comments(database, old.id)] == [m.id for m in said]
        walked = history_requests(emulator, old)
        assert walked >= 1
        # ... and then no more: it is archived and quiet.
        assert await cog.reconcile_due(everything=True) == 1
        assert history_requests(emulator, old) == walked

        emulator.archive_thread(old, archived=False)

        async def unarchived() -> bool:
            state = await store.get_thread(database, old.id)
            return state is not None and not state.archived

        await eventually(unarchived, what="the unarchive")
        emulator.delete_message(said[0])  # seen by the gateway too; the walk must agree
        assert await cog.reconcile_due(everything=True) == 2
        assert history_requests(emulator, old) > walked


async def test_an_old_thread_talked_in_and_archived_again_while_away_is_caught_up(
        emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    with emulator.backdated(days=30):
        old, _ = await post_thread(emulator, world, database, "An old post")
        emulator.send_message(old, world.alice, "long ago")
        emulator.archive_thread(old)
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await bot_log(bot).wait_for("reconcile of 1 discussion thread(s) done")  # walked once, then retired
    late = emulator.send_message(old, world.bob, "a late reply")  # reopens the thread ...
    emulator.archive_thread(old)  # ... which archives again before the bot is back

    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await bot_log(bot).wait_for(f"caught up thread {old.id}: 1 new")
        stored = await store.get_comment(database, late.id)
        assert stored is not None and stored.content == "a late reply"


async def test_replies_in_a_thread_created_just_before_a_crash_are_stored(emulator: FakeDiscord, world: World,
                                                                          tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    await queue_post(database, world.guild.id, world.announcements.id, title="Interrupted post")
    await database.close()
    # The thread is created on Discord; the bot stops before it hears back (its row is never written).
    held = emulator.hold(THREAD_FROM_MESSAGE, applied=True)
    async with running_bot(emulator, settings):
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        thread = await emulator.wait_until(lambda: next(iter(emulator.threads_in(world.announcements)), None))
    held.release()
    reply = emulator.send_message(thread, world.alice, "said while the bot was down")

    async with running_bot(emulator, settings) as bot:  # the announcer resumes and records the thread
        stored = await eventually(lambda: store.get_comment(bot.database, reply.id), what="the early reply")
        assert stored.content == "said while the bot was down"  # type: ignore[attr-defined]
        row = await store.get_thread(bot.database, thread.id)
        assert row is not None
