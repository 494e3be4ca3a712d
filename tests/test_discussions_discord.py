"""Discussion capture end to end: our ConversationBot against the Discord emulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.app import ConversationBot
from bot.storage import Database
from bot.storage import comments as store
from cogs.discussions import INTENT_WARNING
from tests.conftest import BOTH_ENGINES, bot_log, bot_settings, running_bot
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL


@contextlib.asynccontextmanager
async def running(emu: FakeDiscord, tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[ConversationBot, Any]]:
    """The bot on the ``database`` fixture's file, once its first catch-up is over."""
    async with running_bot(emu, bot_settings(emu, tmp_path, **overrides)) as bot:
        # The extension loader imports its own copy of cogs.discussions: no isinstance here.
        cog: Any = bot.get_cog("Discussions")
        assert cog is not None
        await bot_log(bot).wait_for("catch-up of", timeout=8)
        yield bot, cog


async def post_thread(emu: FakeDiscord, world: World, database: Database, title: str = "A post") -> Any:
    """What the announcements code does: the bot's message, a thread from it, the rows."""
    starter = emu.send_message(world.announcements, emu.bot, f"New post: {title}")
    thread = emu.create_thread(world.announcements, title, emu.bot, message=starter)
    await add_post_thread(database, thread.id, title=title, guild_id=world.guild.id,
                          parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    return thread


async def comment(database: Database, message_id: int) -> store.StoredComment | None:
    return await store.get_comment(database, message_id)


async def live_ids(database: Database, thread_id: int) -> list[int]:
    return [c.message_id for c in await store.thread_comments(database, thread_id) if c.deleted_at is None]


async def test_messages_replies_attachments_edits_deletes(emulator: FakeDiscord, world: World,
                                                         database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    helper = emulator.create_user("helper", bot=True, global_name="Helper Bot")
    emulator.add_member(world.guild, helper)
    async with running(emulator, tmp_path) as (bot, cog):
        invite = emulator.send_message(thread, emulator.bot, "What do you think? Reply here.")
        hello = emulator.send_message(thread, world.alice, f"Hello <@{world.bob.id}>, **great** post")
        reply = emulator.send_message(thread, world.bob, "Thanks!", reply_to=hello,
                                      attachments=[("notes.txt", b"some notes")], stickers=["wave"])
        beep = emulator.send_message(thread, helper, "beep boop")
        ping = emulator.send_message(thread, world.bob, f"Ping <@&{world.readers.id}> in <#{world.announcements.id}>")
        elsewhere = emulator.send_message(world.announcements, world.alice, "not in a post thread")
        await eventually(lambda: comment(database, ping.id), what="the last message")
        await cog.capture.flush()

        stored = await store.thread_comments(database, thread.id)
        assert [c.message_id for c in stored] == [hello.id, reply.id, beep.id, ping.id]  # not the bot's own lines
        assert stored.pop().clean_content == "Ping @Readers in #announcements"
        assert await comment(database, invite.id) is None and await comment(database, elsewhere.id) is None
        first, second, third = stored
        assert first.author_name == "Alice" and first.content == hello.content
        assert first.clean_content == "Hello @Bob, great post"
        assert second.reply_to == hello.id and not second.is_bot
        assert [e.kind for e in second.extras] == ["sticker"]
        files = await store.comment_attachments(database, reply.id)
        assert [(f.filename, f.size) for f in files] == [("notes.txt", 10)]
        assert third.is_bot and third.author_name == "Helper Bot"

        emulator.edit_message(hello, "Hello again")
        emulator.edit_message(hello, "Hello, third version")
        await eventually(lambda: _content_is(database, hello.id, "Hello, third version"), what="the edit")
        assert [text for text, _ in await store.comment_revisions(database, hello.id)] == [
            f"Hello <@{world.bob.id}>, **great** post", "Hello again"]

        emulator.delete_message(hello)
        await eventually(lambda: _deleted(database, hello.id), what="the tombstone")
        tomb = await comment(database, hello.id)
        assert tomb is not None and (tomb.content, tomb.clean_content, tomb.author_name) == ("", "", "")
        assert await store.comment_revisions(database, hello.id) == []
        kept = await comment(database, reply.id)
        assert kept is not None and kept.reply_to == hello.id

        emulator.delete_message(reply)
        await eventually(lambda: _deleted(database, reply.id), what="the second tombstone")
        assert await store.comment_attachments(database, reply.id) == []

        batch = [emulator.send_message(thread, world.alice, f"message {n}") for n in range(4)]
        await eventually(lambda: comment(database, batch[-1].id), what="the batch")
        emulator.bulk_delete(thread, batch[:3])
        await eventually(lambda: _deleted(database, batch[2].id), what="the bulk delete")
        assert await live_ids(database, thread.id) == [beep.id, ping.id, batch[3].id]


async def _content_is(database: Database, message_id: int, content: str) -> bool:
    stored = await store.get_comment(database, message_id)
    return stored is not None and stored.content == content


async def _deleted(database: Database, message_id: int) -> bool:
    stored = await store.get_comment(database, message_id)
    return stored is not None and stored.deleted_at is not None


async def test_reactions_and_thread_changes(emulator: FakeDiscord, world: World, database: Database,
                                            tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    async with running(emulator, tmp_path) as (bot, cog):
        target = emulator.send_message(thread, world.alice, "react to me")
        await eventually(lambda: comment(database, target.id), what="the message")
        emulator.add_reaction(target, world.alice, "👍")
        emulator.add_reaction(target, world.bob, "👍")
        emulator.add_reaction(target, world.bob, "🎉")
        emulator.add_reaction(target, world.owner, "party:123456789012345678")

        async def reactions_are(expected: dict[str, int]) -> bool:
            return await store.comment_reactions(database, target.id) == expected

        await eventually(lambda: reactions_are({"👍": 2, "🎉": 1, "party:123456789012345678": 1}), what="adds")
        emulator.remove_reaction(target, world.alice, "👍")
        await eventually(lambda: reactions_are({"👍": 1, "🎉": 1, "party:123456789012345678": 1}), what="remove")
        emulator.remove_emoji_reactions(target, "🎉")
        await eventually(lambda: reactions_are({"👍": 1, "party:123456789012345678": 1}), what="remove emoji")
        emulator.remove_all_reactions(target)
        await eventually(lambda: reactions_are({}), what="remove all")

        emulator.rename_thread(thread, "A better name")
        emulator.archive_thread(thread)
        emulator.lock_thread(thread)

        async def thread_is(name: str, archived: bool, locked: bool) -> bool:
            state = await store.get_thread(database, thread.id)
            return state is not None and (state.name, state.archived, state.locked) == (name, archived, locked)

        await eventually(lambda: thread_is("A better name", True, True), what="rename, archive, lock")
        emulator.delete_channel(thread)

        async def thread_deleted() -> bool:
            state = await store.get_thread(database, thread.id)
            return state is not None and state.deleted

        await eventually(thread_deleted, what="the thread delete")
        assert await live_ids(database, thread.id) == [target.id]  # a deleted thread keeps its comments


async def test_offline_messages_edits_and_deletes_are_caught_up(emulator: FakeDiscord, world: World,
                                                                database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    archived = await post_thread(emulator, world, database, title="An older post")
    async with running(emulator, tmp_path) as (_, cog):
        early = [emulator.send_message(thread, world.alice, f"before {n}") for n in range(3)]
        old_one = emulator.send_message(archived, world.bob, "in the older thread")
        await eventually(lambda: comment(database, old_one.id), what="the live messages")
        await cog.capture.flush()
    # The bot is offline: people keep talking, edit and delete; one thread gets archived.
    missed = [emulator.send_message(thread, world.bob, f"while away {n}") for n in range(130)]
    emulator.edit_message(early[0], "before 0, edited offline")
    emulator.edit_message(missed[-1], "while away, edited too")
    emulator.delete_message(early[1])
    emulator.add_reaction(early[2], world.bob, "👀")
    emulator.send_message(archived, world.alice, "late reply")
    emulator.archive_thread(archived)
    emulator.rename_thread(thread, "Renamed while away")

    async with running(emulator, tmp_path) as (_, cog):
        await cog.capture.flush()
        for channel in (thread, archived):
            shown = {m.id: m.content for m in emulator.messages(channel) if m.author_id != emulator.bot.id}
            stored = {c.message_id: c.content for c in await store.thread_comments(database, channel.id)
                      if c.deleted_at is None}
            assert stored == shown
        assert await _deleted(database, early[1].id)
        assert await store.comment_reactions(database, early[2].id) == {"👀": 1}
        assert len(await store.comment_revisions(database, early[0].id)) == 1
        state = await store.get_thread(database, thread.id)
        assert state is not None and state.name == "Renamed while away"
        older = await store.get_thread(database, archived.id)
        assert older is not None and older.archived


async def test_reconcile_finds_old_deletes_made_offline(emulator: FakeDiscord, world: World,
                                                        database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    async with running(emulator, tmp_path) as (_, cog):
        items = [emulator.send_message(thread, world.alice, f"line {n}") for n in range(150)]
        await eventually(lambda: comment(database, items[-1].id), what="the messages")
    emulator.delete_message(items[0])  # older than the last 100: only a full reconcile sees it
    emulator.edit_message(items[1], "line 1, edited long ago")
    async with running(emulator, tmp_path) as (_, cog):
        assert await cog.reconcile_due(everything=True) == 1
        assert await _deleted(database, items[0].id)
        assert await _content_is(database, items[1].id, "line 1, edited long ago")
        state = await store.get_thread(database, thread.id)
        assert state is not None and state.last_reconciled_at is not None


async def test_privacy_opt_out_erases_and_stops_storing(emulator: FakeDiscord, world: World,
                                                        database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    async with running(emulator, tmp_path) as (_, cog):
        mine = emulator.send_message(thread, world.alice, "my opinion")
        answer = emulator.send_message(thread, world.bob, "a reply", reply_to=mine)
        await eventually(lambda: comment(database, answer.id), what="the messages")

        handle = emulator.invoke("privacy optout", world.alice, thread)
        text = await handle.answer_text()
        assert "1 saved message was erased" in text
        assert handle.original is not None and handle.original.ephemeral
        tomb = await comment(database, mine.id)
        assert tomb is not None and tomb.deleted_at is not None and tomb.content == ""
        kept = await comment(database, answer.id)
        assert kept is not None and kept.reply_to == mine.id and kept.deleted_at is None

        ignored = emulator.send_message(thread, world.alice, "not kept")
        marker = emulator.send_message(thread, world.bob, "kept")
        await eventually(lambda: comment(database, marker.id), what="the marker")
        await cog.capture.flush()
        assert await comment(database, ignored.id) is None
        assert "opted out" in await emulator.invoke("privacy status", world.alice, thread).answer_text()

        await emulator.invoke("privacy optin", world.alice, thread).answer_text()
        back = emulator.send_message(thread, world.alice, "back again")
        await eventually(lambda: comment(database, back.id), what="a message after opting in")
        assert "1 of your messages" in await emulator.invoke("privacy status", world.alice, thread).answer_text()


async def test_hide_and_show_from_the_context_menu(emulator: FakeDiscord, world: World, database: Database,
                                                   tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    async with running(emulator, tmp_path) as (_, cog):
        target = emulator.send_message(thread, world.bob, "something to hide")
        await eventually(lambda: comment(database, target.id), what="the message")

        # Without Manage Messages Discord does not even offer the command ...
        with pytest.raises(PermissionError):
            emulator.invoke_message_command("Hide from blog", target, world.alice)
        # ... and where a server opened it to everyone, the bot still refuses.
        for name in ("Hide from blog", "Show on blog"):
            emulator.commands()[name].default_member_permissions = None
        refused = await emulator.invoke_message_command("Hide from blog", target, world.alice).answer_text()
        assert "Manage Messages" in refused
        assert not (await comment(database, target.id)).hidden  # type: ignore[union-attr]

        done = await emulator.invoke_message_command("Hide from blog", target, world.owner).answer_text()
        assert done.startswith("Hidden")
        assert (await comment(database, target.id)).hidden  # type: ignore[union-attr]
        await emulator.invoke_message_command("Show on blog", target, world.owner).answer_text()
        assert not (await comment(database, target.id)).hidden  # type: ignore[union-attr]

        outside = emulator.send_message(world.announcements, world.bob, "not a comment")
        answer = await emulator.invoke_message_command("Hide from blog", outside, world.owner).answer_text()
        assert "not a saved comment" in answer


async def test_missing_message_content_intent_is_reported_once_and_nothing_stored(
        emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    settings = bot_settings(emulator, tmp_path, announce_channel_id=world.announcements.id)
    emulator.set_portal_intents(message_content=False)  # REST blanks other people's content too

    def without_content_intent(bot: ConversationBot) -> None:
        intents = discord.Intents(bot.intents.value)
        intents.message_content = False  # as when the intent is off: Discord blanks others' content
        bot._connection._intents = intents

    def warnings() -> list[Any]:
        return [m for m in emulator.messages(world.announcements)
                if m.author_id == emulator.bot.id and m.content == INTENT_WARNING]

    async with running_bot(emulator, settings, configure=without_content_intent) as bot:
        blank = emulator.send_message(thread, world.alice, "you cannot read this")
        await emulator.wait_until(lambda: len(warnings()) == 1)
        second = emulator.send_message(thread, world.bob, "nor this", attachments=[("a.txt", b"x")])
        # A message that mentions the bot keeps its content (as on Discord): stored, and it marks
        # the point where the two before it were handled.
        mention = emulator.send_message(thread, world.bob, f"<@{emulator.bot.id}> can you read this?")
        await eventually(lambda: comment(database, mention.id), what="the message mentioning the bot")
        await bot.get_cog("Discussions").capture.flush()  # type: ignore[union-attr]
        assert await comment(database, blank.id) is None and await comment(database, second.id) is None
    async with running_bot(emulator, settings, configure=without_content_intent):
        still = emulator.send_message(thread, world.alice, "still blank")
        marker = emulator.send_message(thread, world.bob, f"<@{emulator.bot.id}> marker")
        await eventually(lambda: comment(database, marker.id), what="the marker")
        assert await comment(database, still.id) is None
    assert len(warnings()) == 1
    assert "Privileged Gateway Intents" in INTENT_WARNING and "Message Content Intent" in INTENT_WARNING


async def test_a_fresh_session_catches_up_what_was_never_dispatched(
        emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    thread = await post_thread(emulator, world, database)
    async with running(emulator, tmp_path) as (_, cog):
        first = emulator.send_message(thread, world.alice, "before the new session")
        await eventually(lambda: comment(database, first.id), what="the first message")
        await emulator.invalidate_session(resumable=False)  # no RESUME: nothing missed is replayed
        missed = emulator.send_message(thread, world.bob, "sent while the session was gone")
        await eventually(lambda: comment(database, missed.id), what="the catch-up of the new session")
        stored = await comment(database, missed.id)
        assert stored is not None and stored.content == "sent while the session was gone"
