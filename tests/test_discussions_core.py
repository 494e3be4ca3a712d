"""The capture core and its storage, driven directly (no Discord): rules, edits, tombstones,
reactions, thread state, privacy, catch-up and reconcile against an in-memory history."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.discussions.capture import _PLAIN_TEXT, Verdict, clean_text
from bot.discussions.service import DiscussionCapture
from bot.model.discord_ids import snowflake_time
from bot.model.messages import (
    AttachmentInfo,
    Extra,
    MessageDeletion,
    ReactionChange,
    ReactionCount,
    ThreadChange,
)
from bot.render.discord_to_html import discord_markdown_to_text
from bot.storage import Database
from bot.storage import comments as store
from bot.storage.db import to_db_time
from tests.conftest import BOTH_ENGINES
from tests.discussions_support import (
    ALICE,
    BOB,
    BOT_USER_ID,
    OTHER_BOT,
    FakeHistory,
    add_post_thread,
    edited,
    indexed_comments,
    message,
    next_snowflake,
)

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

THREAD = 910_000_000_000_000_001
OTHER_THREAD = 910_000_000_000_000_002
UNTRACKED = 910_000_000_000_000_003


@pytest.fixture
async def capture(database: Database) -> DiscussionCapture:
    await add_post_thread(database, THREAD)
    service = DiscussionCapture(database, own_user_id=BOT_USER_ID)
    await service.load()
    return service


async def test_messages_are_stored_with_everything(capture: DiscussionCapture, database: Database) -> None:
    first = message(THREAD, f"Hi <@{BOB}>, see **this** <#{OTHER_THREAD}>",
                    user_names=((BOB, "Bob B"),), channel_names=((OTHER_THREAD, "other-post"),))
    reply = message(THREAD, "agreed", author_id=BOB, author_name="Bob B", message_type=19,
                    reply_to=first.message_id,
                    attachments=(AttachmentInfo(5, "cat.png", "https://cdn.example/cat.png", 1234, "image/png"),),
                    extras=(Extra("embed", "A link", "https://example.org/a"),))
    from_bot = message(THREAD, "beep", author_id=OTHER_BOT, author_name="Helper", author_is_bot=True)
    for item in (first, reply, from_bot):
        assert await capture.on_message(item) is Verdict.STORE
    await capture.flush()
    stored = await store.thread_comments(database, THREAD)
    assert [c.message_id for c in stored] == [first.message_id, reply.message_id, from_bot.message_id]
    assert stored[0].clean_content == "Hi @Bob B, see this #other-post"
    assert stored[0].content == first.content
    assert stored[1].reply_to == first.message_id
    assert stored[1].extras == (Extra("embed", "A link", "https://example.org/a"),)
    assert await store.comment_attachments(database, reply.message_id) == list(reply.attachments)
    assert stored[2].is_bot and not stored[0].is_bot
    assert await indexed_comments(database, "bob") == [first.message_id]


async def test_what_is_not_stored(capture: DiscussionCapture, database: Database) -> None:
    assert await capture.on_message(message(UNTRACKED)) is Verdict.UNTRACKED
    assert await capture.on_message(message(THREAD, author_id=BOT_USER_ID)) is Verdict.OWN
    assert await capture.on_message(message(THREAD, message_type=7)) is Verdict.SYSTEM
    assert await capture.on_message(message(THREAD, "")) is Verdict.NO_CONTENT
    # An empty text with a file is a real message.
    with_file = message(THREAD, "", attachments=(AttachmentInfo(1, "a.txt", "https://cdn.example/a", 3),))
    assert await capture.on_message(with_file) is Verdict.STORE
    await capture.flush()
    assert [c.message_id for c in await store.thread_comments(database, THREAD)] == [with_file.message_id]


async def test_a_thread_added_later_is_picked_up(capture: DiscussionCapture, database: Database) -> None:
    assert not capture.known_untracked(OTHER_THREAD)  # never looked at: the cog must ask
    assert await capture.on_message(message(OTHER_THREAD)) is Verdict.UNTRACKED
    assert capture.known_untracked(OTHER_THREAD)  # the cog skips the next ones unconverted
    await add_post_thread(database, OTHER_THREAD, title="Second")
    capture.thread_tracked(OTHER_THREAD)
    assert not capture.known_untracked(OTHER_THREAD)
    assert await capture.on_message(message(OTHER_THREAD)) is Verdict.STORE


async def test_events_of_the_bots_own_new_thread_wait_for_its_row(capture: DiscussionCapture,
                                                                 database: Database) -> None:
    capture.thread_expected(OTHER_THREAD)  # THREAD_CREATE of a thread this bot owns, its row not written yet
    first = message(OTHER_THREAD, "first words")
    capture.receive_message(first)
    capture.receive_edit(edited(first, "first words, edited"))
    capture.receive_reaction(ReactionChange("add", OTHER_THREAD, first.message_id, "👍"))
    gone = message(OTHER_THREAD, "said and taken back")
    capture.receive_message(gone)
    capture.receive_delete(MessageDeletion(OTHER_THREAD, frozenset({gone.message_id})))
    await capture.flush()
    assert not capture.known_untracked(OTHER_THREAD)  # a miss is never remembered for it
    assert await store.thread_comments(database, OTHER_THREAD) == []
    await add_post_thread(database, OTHER_THREAD, title="Announced")
    capture.thread_tracked(OTHER_THREAD)  # what the announcer says once the row is committed
    await capture.flush()
    stored = {c.message_id: c for c in await store.thread_comments(database, OTHER_THREAD)}
    assert stored[first.message_id].content == "first words, edited"
    assert await store.comment_reactions(database, first.message_id) == {"👍": 1}
    assert gone.message_id not in stored or stored[gone.message_id].deleted_at is not None


async def test_edits_keep_history(capture: DiscussionCapture, database: Database) -> None:
    original = message(THREAD, "first words")
    await capture.on_message(original)
    second = edited(original, "second words")
    third = edited(second, "third words")
    await capture.on_edit(second)
    await capture.on_edit(third)
    await capture.on_edit(second)  # a stale view arriving late changes nothing
    unfurl = replace(third, extras=(Extra("embed", "x", "https://x.example"),))
    await capture.on_edit(unfurl)
    await capture.flush()
    comment = await store.get_comment(database, original.message_id)
    assert comment is not None
    assert comment.content == "third words" and comment.clean_content == "third words"
    assert comment.edited_at == third.edited_at
    assert comment.extras == unfurl.extras
    assert [text for text, _ in await store.comment_revisions(database, original.message_id)] == [
        "first words", "second words"]
    assert await indexed_comments(database, "first") == []


async def test_deletes_leave_tombstones(capture: DiscussionCapture, database: Database) -> None:
    parent = message(THREAD, "parent", attachments=(AttachmentInfo(1, "a.png", "https://cdn.example/a", 3),))
    child = message(THREAD, "child", author_id=BOB, message_type=19, reply_to=parent.message_id)
    await capture.on_message(parent)
    await capture.on_message(child)
    await capture.on_edit(edited(parent, "parent, edited"))
    await capture.on_reaction(ReactionChange("add", THREAD, parent.message_id, "👍"))
    await capture.on_delete(MessageDeletion(THREAD, frozenset({parent.message_id})))
    await capture.on_edit(edited(parent, "edited after the delete", after=timedelta(minutes=1)))
    await capture.flush()
    tomb = await store.get_comment(database, parent.message_id)
    assert tomb is not None and tomb.deleted_at is not None
    assert (tomb.content, tomb.clean_content, tomb.author_name, tomb.author_id, tomb.extras) == ("", "", "", None, ())
    assert await store.comment_revisions(database, parent.message_id) == []
    assert await store.comment_attachments(database, parent.message_id) == []
    assert await store.comment_reactions(database, parent.message_id) == {}
    reply = await store.get_comment(database, child.message_id)
    assert reply is not None and reply.reply_to == parent.message_id and reply.deleted_at is None
    assert await indexed_comments(database, "parent") == []


async def test_bulk_delete(capture: DiscussionCapture, database: Database) -> None:
    items = [message(THREAD, f"message {n}") for n in range(5)]
    for item in items:
        await capture.on_message(item)
    gone = frozenset(item.message_id for item in items[1:4])
    await capture.on_delete(MessageDeletion(THREAD, gone))
    await capture.flush()
    stored = await store.thread_comments(database, THREAD)
    assert {c.message_id for c in stored if c.deleted_at is not None} == gone
    assert len(stored) == 5


async def test_reactions_follow_every_change(capture: DiscussionCapture, database: Database) -> None:
    item = message(THREAD)
    await capture.on_message(item)
    for emoji in ("👍", "👍", "🎉", "party:123", "party:123"):
        await capture.on_reaction(ReactionChange("add", THREAD, item.message_id, emoji))
    await capture.flush()
    assert await store.comment_reactions(database, item.message_id) == {"👍": 2, "🎉": 1, "party:123": 2}
    await capture.on_reaction(ReactionChange("remove", THREAD, item.message_id, "👍"))
    await capture.on_reaction(ReactionChange("remove", THREAD, item.message_id, "🎉"))
    await capture.on_reaction(ReactionChange("remove", THREAD, item.message_id, "🎉"))  # never below zero
    await capture.flush()
    assert await store.comment_reactions(database, item.message_id) == {"👍": 1, "party:123": 2}
    await capture.on_reaction(ReactionChange("clear_emoji", THREAD, item.message_id, "party:123"))
    await capture.flush()
    assert await store.comment_reactions(database, item.message_id) == {"👍": 1}
    await capture.on_reaction(ReactionChange("add", THREAD, item.message_id, "🎉"))
    await capture.on_reaction(ReactionChange("clear", THREAD, item.message_id))
    await capture.flush()
    assert await store.comment_reactions(database, item.message_id) == {}
    # Reactions on messages that are not stored are ignored.
    await capture.on_reaction(ReactionChange("add", THREAD, next_snowflake(), "👍"))
    await capture.flush()
    assert await database.fetch_value("SELECT COUNT(*) FROM reactions") == 0


async def test_thread_changes(capture: DiscussionCapture, database: Database) -> None:
    await capture.on_message(message(THREAD))
    await capture.on_thread_change(ThreadChange(THREAD, name="Renamed"))
    await capture.on_thread_change(ThreadChange(THREAD, archived=True, locked=True))
    await capture.flush()
    state = await store.get_thread(database, THREAD)
    assert state is not None
    assert (state.name, state.archived, state.locked, state.deleted) == ("Renamed", True, True, False)
    await capture.on_thread_change(ThreadChange(THREAD, deleted=True))
    await capture.flush()
    state = await store.get_thread(database, THREAD)
    assert state is not None and state.deleted
    assert len(await store.thread_comments(database, THREAD)) == 1  # the comments stay
    assert await capture.on_message(message(THREAD)) is Verdict.UNTRACKED


async def test_opt_out_erases_and_stops_storing(capture: DiscussionCapture, database: Database) -> None:
    mine = message(THREAD, "my words")
    theirs = message(THREAD, "a reply", author_id=BOB, message_type=19, reply_to=mine.message_id)
    await capture.on_message(mine)
    await capture.on_message(theirs)
    await capture.flush()
    assert await database.write(store.set_opted_out(ALICE, True, mine.created_at)) == 1
    later = message(THREAD, "not to be kept")
    await capture.on_message(later)
    await capture.on_edit(edited(mine, "edited while opted out"))
    await capture.flush()
    assert await store.get_comment(database, later.message_id) is None
    tomb = await store.get_comment(database, mine.message_id)
    assert tomb is not None and tomb.deleted_at is not None and tomb.content == ""
    assert await store.is_opted_out(database, ALICE)
    await database.write(store.set_opted_out(ALICE, False, mine.created_at))
    again = message(THREAD, "back again")
    await capture.on_message(again)
    await capture.flush()
    assert (await store.get_comment(database, again.message_id)) is not None
    assert await store.stored_comment_count(database, ALICE) == 1


async def test_hidden_flag(capture: DiscussionCapture, database: Database) -> None:
    item = message(THREAD)
    await capture.on_message(item)
    await capture.flush()
    assert await database.write(store.set_hidden(item.message_id, True))
    comment = await store.get_comment(database, item.message_id)
    assert comment is not None and comment.hidden
    assert not await database.write(store.set_hidden(next_snowflake(), True))


async def test_intent_warning_is_claimed_once_even_across_restarts(database: Database) -> None:
    first = DiscussionCapture(database)
    assert await first.claim_intent_warning(1)
    assert not await first.claim_intent_warning(1)
    assert not await DiscussionCapture(database).claim_intent_warning(1)
    assert await DiscussionCapture(database).claim_intent_warning(2)


async def test_catch_up_stores_missed_messages_and_reconcile_finds_old_changes(
        capture: DiscussionCapture, database: Database) -> None:
    history = FakeHistory()
    seen = [message(THREAD, f"seen {n}") for n in range(120)]
    for item in seen:
        await capture.on_message(item)
    history.put(*seen)
    # While the bot was away: 250 new messages (several pages), edits, deletes, reactions.
    missed = [message(THREAD, f"missed {n}", author_id=BOB) for n in range(250)]
    own = message(THREAD, "the bot's own line", author_id=BOT_USER_ID)
    history.put(*missed, own)
    history.put(replace(edited(seen[0], "seen 0, edited offline"), reactions=(ReactionCount("👍", 3),)))
    history.remove(THREAD, seen[1].message_id)
    history.put(edited(seen[-1], "the last one we knew, edited offline"))
    history.states[THREAD] = ThreadChange(THREAD, name="Renamed offline", archived=True, locked=False)
    # The catch-up window starts after seen[1]: the messages before it are not compared.
    report = await capture.catch_up((await store.live_threads(database))[0], history,
                                    since_id=seen[20].message_id)
    assert (report.stored, report.edited, report.deleted) == (250, 1, 0)
    stored = {c.message_id: c for c in await store.thread_comments(database, THREAD)}
    assert len(stored) == 370 and own.message_id not in stored
    assert stored[seen[-1].message_id].content == "the last one we knew, edited offline"
    # seen[0] and seen[1] are older than the window: catch-up does not reach them ...
    assert stored[seen[0].message_id].content == "seen 0"
    # ... the reconcile does.
    report = await capture.reconcile((await store.live_threads(database))[0], history)
    assert (report.stored, report.edited, report.deleted) == (0, 1, 1)
    assert (await store.get_comment(database, seen[0].message_id)).content == "seen 0, edited offline"  # type: ignore[union-attr]
    assert await store.comment_reactions(database, seen[0].message_id) == {"👍": 3}
    assert (await store.get_comment(database, seen[1].message_id)).deleted_at is not None  # type: ignore[union-attr]
    state = await store.get_thread(database, THREAD)
    assert state is not None and state.name == "Renamed offline" and state.archived
    assert state.last_reconciled_at is not None
    # A second pass changes nothing.
    again = await capture.reconcile((await store.live_threads(database))[0], history)
    assert (again.stored, again.edited, again.deleted) == (0, 0, 0)


async def test_catch_up_window_sees_recent_edits_and_deletes(capture: DiscussionCapture, database: Database) -> None:
    history = FakeHistory()
    items = [message(THREAD, f"line {n}") for n in range(10)]
    for item in items:
        await capture.on_message(item)
    history.put(*items)
    history.put(edited(items[8], "line 8 edited"))
    history.remove(THREAD, items[9].message_id)  # the newest one was deleted offline
    history.remove(THREAD, items[2].message_id)
    report = await capture.catch_up((await store.live_threads(database))[0], history, since_id=0)
    assert (report.stored, report.edited, report.deleted) == (0, 1, 2)
    stored = {c.message_id: c for c in await store.thread_comments(database, THREAD)}
    assert stored[items[8].message_id].content == "line 8 edited"
    assert stored[items[9].message_id].deleted_at is not None
    assert stored[items[2].message_id].deleted_at is not None


async def test_catch_up_never_resurrects_or_drops_live_messages(capture: DiscussionCapture,
                                                                database: Database) -> None:
    history = FakeHistory()
    deleted_live = message(THREAD, "deleted while the page was on its way")
    history.put(deleted_live)  # the page snapshot still has it
    arrived_live = message(THREAD, "arrived after the page was fetched")

    async def meanwhile() -> None:  # what Discord and the gateway do while the page is on its way
        history.remove(THREAD, deleted_live.message_id)
        history.put(arrived_live)
        await capture.on_delete(MessageDeletion(THREAD, frozenset({deleted_live.message_id})))
        await capture.on_message(arrived_live)

    history.while_fetching = meanwhile
    await capture.catch_up((await store.live_threads(database))[0], history, since_id=0)
    assert await store.get_comment(database, deleted_live.message_id) is None
    live = await store.get_comment(database, arrived_live.message_id)
    assert live is not None and live.deleted_at is None


async def test_a_message_newer_than_the_newest_page_is_not_taken_for_deleted(
        capture: DiscussionCapture, database: Database) -> None:
    history = FakeHistory()
    older = message(THREAD, "older")
    await capture.on_message(older)
    history.put(older)
    arrived_live = message(THREAD, "arrived while the newest page was on its way")

    async def meanwhile() -> None:
        history.put(arrived_live)
        await capture.on_message(arrived_live)

    history.while_fetching_newest = meanwhile
    report = await capture.reconcile((await store.live_threads(database))[0], history)
    assert report.deleted == 0
    live = await store.get_comment(database, arrived_live.message_id)
    assert live is not None and live.deleted_at is None


async def test_a_deleted_thread_is_recorded_by_catch_up(capture: DiscussionCapture, database: Database) -> None:
    await capture.on_message(message(THREAD))
    history = FakeHistory()
    history.gone.add(THREAD)
    report = await capture.catch_up((await store.live_threads(database))[0], history, since_id=0)
    assert report.thread_gone
    state = await store.get_thread(database, THREAD)
    assert state is not None and state.deleted
    assert len(await store.thread_comments(database, THREAD)) == 1


async def test_threads_due_for_reconcile(capture: DiscussionCapture, database: Database) -> None:
    assert [t.thread_id for t in await capture.threads_due_for_reconcile(24)] == [THREAD]
    await capture.reconcile((await store.live_threads(database))[0], FakeHistory())
    assert await capture.threads_due_for_reconcile(24) == []
    assert [t.thread_id for t in await capture.threads_due_for_reconcile(0)] == [THREAD]


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(list("ab Zé1 .,!?'\"%/=_*-#<>@&;:[]()`~|\\\n\t+")), max_size=40))
def test_plain_text_fast_path_matches_the_renderer(text: str) -> None:
    item = message(THREAD, text)
    assert clean_text(item) == discord_markdown_to_text(text)
    if _PLAIN_TEXT.fullmatch(text) and "\n" not in text:
        assert clean_text(item) == " ".join(text.split())


async def test_a_burst_is_stored_in_groups_in_full(capture: DiscussionCapture, database: Database) -> None:
    # 637 = 6 x 100 + 25 + 2 x 5 + 2 x 1 (every statement size), plus some with files and some by an
    # opted-out user, spread over two threads, one of them untracked.
    await database.write(store.set_opted_out(BOB, True, next_snowflake_time()))
    items = []
    for n in range(637):
        extra: dict[str, object] = {}
        if n % 97 == 0:
            extra["attachments"] = (AttachmentInfo(n + 1, f"{n}.png", f"https://cdn.example/{n}", n),)
        items.append(message(THREAD, f"burst message {n}", author_id=BOB if n % 50 == 7 else ALICE, **extra))
    for item in items:
        await capture.on_message(item)
    await capture.flush()
    expected = [item.message_id for item in items if item.author_id == ALICE]
    stored = await store.thread_comments(database, THREAD)
    assert [c.message_id for c in stored] == expected
    assert stored[5].content == "burst message 5" and stored[5].author_name == "Alice"
    # The creation time comes from the id, in the database's one time format, in both insert paths
    # (grouped rows and the rows with files).
    assert all(c.created_at == snowflake_time(c.message_id) for c in stored)
    written = await database.fetch_all("SELECT message_id, created_at FROM comments WHERE message_id IN (?, ?)",
                                       (items[5].message_id, items[97].message_id))
    assert len(written) == 2
    assert all(row[1] == to_db_time(snowflake_time(row[0])) for row in written)
    assert len(await store.comment_attachments(database, items[97].message_id)) == 1
    assert len(await indexed_comments(database, "burst")) == len(expected)


def next_snowflake_time() -> datetime:
    return snowflake_time(next_snowflake())


async def test_one_bad_message_does_not_cost_its_group_the_others(capture: DiscussionCapture, database: Database,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    items = [message(THREAD, f"group message {n}") for n in range(5)]
    broken = replace(items[2], author_name=None)  # type: ignore[arg-type]  # a NOT NULL column
    for item in (*items[:2], broken, *items[3:]):
        await capture.on_message(item)
    await capture.flush()
    stored = await store.thread_comments(database, THREAD)
    assert [c.message_id for c in stored] == [item.message_id for item in items if item is not items[2]]
    assert f"message {broken.message_id} could not be stored" in caplog.text
