"""A realistic SQLite database written through the project's own storage functions (what the bot
writes), for the copy-db tests and bench; and reading whole tables of either engine to compare them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bot.model.messages import AttachmentInfo, Extra, IncomingMessage, ReactionCount
from bot.model.posts import Entry
from bot.storage import Database
from bot.storage import comments as comment_store
from bot.storage import webhooks as webhook_store
from bot.storage import websub as websub_store
from bot.storage.announcements import begin_attempt, load_work, record_failed, record_sent, record_threaded
from bot.storage.blog import ImportedComment, store_imported_comments
from bot.storage.copydb import COPIED_TABLES
from bot.storage.feeds import record_failure_sync, register_feed
from bot.storage.filters import save_filter
from bot.storage.guild_settings import save_guild_override
from bot.storage.meta import set_meta
from bot.storage.posts import AnnouncePolicy, store_entries_sync
from bot.storage.readonly import connect_read_only
from bot.storage.replies import open_session, record_blog_reply, revoke_session
from bot.storage.visibility import record_channel_visibility
from tests.discussions_support import GUILD_ID, next_snowflake

ANNOUNCE_CHANNEL = 900_000_000_000_000_100
FORUM_CHANNEL = 900_000_000_000_000_101
ALICE, BOB, CAROL = 900_000_000_000_000_210, 900_000_000_000_000_211, 900_000_000_000_000_212
WEBHOOK = "https://hooks.example/comments"
FEED_URL, FORUM_URL = "https://blog.example/feed", "https://other.example/atom"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(number: int) -> Entry:
    link = f"https://blog.example/posts/{number}"
    return Entry(identity=link, link=link, guid=f"guid-{number}", title=f"Post {number}: Café déjà vu",
                 author="Ada", summary=f"Summary of post {number}, with ünïcödé and 'quotes'.",
                 published=START - timedelta(days=number), updated=None, date_known=True,
                 image_url=f"https://blog.example/img/{number}.png" if number % 2 else None,
                 categories=("news", f"tag{number}"))


def chat(thread_id: int, content: str, *, author_id: int = ALICE, author_name: str = "Alice",
         at: datetime, **fields: Any) -> IncomingMessage:
    return IncomingMessage(message_id=fields.pop("message_id", None) or next_snowflake(at), channel_id=thread_id,
                           guild_id=GUILD_ID, author_id=author_id, author_name=author_name,
                           author_avatar_url=f"https://cdn.example/{author_id}.png", author_is_bot=False,
                           message_type=0, content=content, **fields)


async def build_realistic_database(path: Path, *, bulk_comments: int = 0) -> None:
    """Feeds, posts (via the feed code), announcements in every state, threads, comments with
    attachments, reactions, edits, deletions, a hidden one, an opted-out user, imported comments,
    blog replies and sessions, channel visibility, guild settings, meta and a webhook outbox whose
    oldest events were delivered and pruned (so SQLite has handed out ids no row holds any more).
    ``bulk_comments`` more plain comments spread over the threads (for the benchmark)."""
    database = await Database.open(path)
    try:
        await set_meta(database, "copy-test", "a value")
        await save_guild_override(database, GUILD_ID, announcements_per_cycle=4, thread_auto_archive_minutes=1440)
        feed = await register_feed(database, guild_id=GUILD_ID, url=FEED_URL,
                                   channel_id=ANNOUNCE_CHANNEL, backfill=3)
        forum = await register_feed(database, guild_id=GUILD_ID, url=FORUM_URL,
                                    channel_id=FORUM_CHANNEL, channel_kind="forum", ping_role_id=77)
        policy = AnnouncePolicy(first_fetch=False, backfill=3, old_before=None, max_queued=50)

        def poll(connection: sqlite3.Connection) -> None:
            store_entries_sync(connection, guild_id=GUILD_ID, feed_id=feed.id, channel_id=ANNOUNCE_CHANNEL,
                               feed_title="Example Blog", entries=[entry(n) for n in range(1, 7)],
                               policy=policy, now=START)
            store_entries_sync(connection, guild_id=GUILD_ID, feed_id=forum.id, channel_id=FORUM_CHANNEL,
                               feed_title="Other", entries=[entry(n) for n in range(20, 22)], policy=policy,
                               now=START)
            record_failure_sync(connection, forum.id, now=START, error="HTTP 503", failures=1, disabled_reason=None,
                                next_poll_at=START + timedelta(minutes=10))

        await database.write(poll)
        await database.write(webhook_store.sync_targets([WEBHOOK]))
        announcement_ids = [int(row["id"]) for row in await database.fetch_all(
            "SELECT id FROM announcements ORDER BY id")]
        thread_ids: list[int] = []
        for index, announcement_id in enumerate(announcement_ids):
            attempt = await begin_attempt(database, announcement_id)
            assert attempt is not None
            if index == len(announcement_ids) - 1:
                await record_failed(database, announcement_id, "Missing Access", 50001)
                continue
            message_id = next_snowflake(START + timedelta(minutes=index))
            await record_sent(database, announcement_id, message_id)
            if index == len(announcement_ids) - 2:
                continue  # sent, no thread yet
            work = await load_work(database, announcement_id)
            assert work is not None
            thread_id = next_snowflake(START + timedelta(minutes=index, seconds=1))
            await record_threaded(database, work, message_id=message_id, thread_id=thread_id,
                                  parent_channel_id=ANNOUNCE_CHANNEL, name=f"Thread {index}")
            thread_ids.append(thread_id)
        await record_channel_visibility(database, GUILD_ID, {ANNOUNCE_CHANNEL: True, FORUM_CHANNEL: False})
        await _filters_and_websub(database, feed.id, forum.id, policy)

        first, second = thread_ids[0], thread_ids[1]
        moment = START + timedelta(hours=1)
        plain = chat(first, "Hello **world** <@900000000000000211>", at=moment,
                     extras=(Extra("embed", "A link", "https://example.org/"),))
        with_files = chat(first, "see attached", author_id=BOB, author_name="Bob", at=moment + timedelta(seconds=1),
                          reply_to=plain.message_id,
                          attachments=(AttachmentInfo(next_snowflake(moment), "photo.png",
                                                      "https://cdn.example/photo.png", 12345, "image/png"),),
                          reactions=(ReactionCount("👍", 3), ReactionCount("party:123456789012345678", 1)))
        doomed = chat(first, "I will be deleted", author_id=BOB, author_name="Bob", at=moment + timedelta(seconds=2))
        edited = chat(second, "first version", at=moment + timedelta(seconds=3))
        hidden = chat(second, "spam spam", author_id=CAROL, author_name="Carol", at=moment + timedelta(seconds=4))
        webhook_reply = chat(second, "from the blog", author_id=1234, author_name="Blog", at=moment + timedelta(seconds=5))
        batch = [(item, item.content) for item in (plain, with_files, doomed, edited, hidden, webhook_reply)]
        await record_blog_reply(database, message_id=webhook_reply.message_id, thread_id=second, author_id=CAROL,
                                author_name="Carol", author_avatar_url=None, reply_to=edited.message_id)
        await database.write(comment_store.store_comments(batch))
        later = moment + timedelta(minutes=5)
        await database.write(comment_store.update_comment(
            IncomingMessage(**{**_fields(edited), "content": "second version", "edited_at": later}),
            "second version", later))
        await database.write(comment_store.add_reaction(plain.message_id, "❤️"))
        await database.write(comment_store.add_reaction(plain.message_id, "❤️"))
        await database.write(comment_store.tombstone_comments([doomed.message_id], later))
        await database.write(comment_store.set_hidden(hidden.message_id, True))
        await database.write(comment_store.set_opted_out(CAROL, True, later))
        await database.write(comment_store.set_opted_out(CAROL, False, later + timedelta(minutes=1)))
        await database.write(comment_store.set_opted_out(BOB + 999, True, later))
        first_post = int(await database.fetch_value("SELECT post_id FROM threads WHERE thread_id = ?", (first,)))
        await database.write(store_imported_comments(first_post, [
            ImportedComment("wxr", "10", None, "Old Reader", "From the old blog", "From the old blog",
                            START - timedelta(days=400)),
            ImportedComment("wxr", "11", "10", "Another", "A reply, long ago", "A reply, long ago",
                            START - timedelta(days=399)),
            ImportedComment("disqus", "d1", None, "Gone", "", "", START - timedelta(days=300), deleted=True),
        ]))
        await open_session(database, "token-one", user_id=CAROL, user_name="Carol", avatar_url=None,
                           origin="https://blog.example", lifetime=timedelta(days=30))
        await open_session(database, "token-two", user_id=ALICE, user_name="Alice",
                           avatar_url="https://cdn.example/a.png", origin="https://blog.example",
                           lifetime=timedelta(days=30))
        await revoke_session(database, "token-two")
        oldest_event = int(await database.fetch_value("SELECT min(id) FROM webhook_outbox"))
        await database.write(webhook_store.mark_done(WEBHOOK, oldest_event + 1))  # two delivered, pruned
        if bulk_comments:
            await _bulk_comments(database, thread_ids, bulk_comments, moment + timedelta(hours=1))
    finally:
        await database.close()


async def _filters_and_websub(database: Database, feed_id: int, forum_id: int, policy: AnnouncePolicy) -> None:
    """Filters on both feeds and a post one of them dropped (a skipped, filtered announcement);
    WebSub subscriptions: one live with a push, one failed, one retired (no feed, unsubscribing)."""
    await save_filter(database, feed_id, None, "/déjà\\s+vu 8$/")
    await save_filter(database, forum_id, "café news", None)
    later = START + timedelta(minutes=30)

    def poll(connection: sqlite3.Connection) -> None:
        store_entries_sync(connection, guild_id=GUILD_ID, feed_id=feed_id, channel_id=ANNOUNCE_CHANNEL,
                           feed_title="Example Blog", entries=[entry(8)], policy=policy, now=later,
                           filtered_out=frozenset({entry(8).identity}))
        websub_store.note_hub_sync(connection, feed_id, hub_url="https://hub.example/", topic_url=FEED_URL,
                                   now=later, token="token-live", secret="secret-live")
        websub_store.note_hub_sync(connection, forum_id, hub_url="https://old-hub.example/", topic_url=FORUM_URL,
                                   now=later, token="token-retired", secret="secret-retired")

    await database.write(poll)
    live = await websub_store.for_feed(database, feed_id)
    retired = await websub_store.for_feed(database, forum_id)
    assert live is not None and retired is not None
    for subscription in (live, retired):
        await websub_store.mark_requested(database, subscription.id, "subscribe", now=later, lease_seconds=86_400,
                                          verify_by=later + timedelta(minutes=5))
    verified = await websub_store.verify(database, "token-live", mode="subscribe", topic_url=FEED_URL,
                                         lease_seconds=86_400, now=later, renew_after=0.85)
    assert verified is not None
    await websub_store.record_push(database, live.id, later + timedelta(minutes=1))
    # The forum's hub moves: the old subscription is unsubscribed (feed_id NULL), a new one wanted, then failed.
    await database.write(lambda connection: websub_store.note_hub_sync(
        connection, forum_id, hub_url="https://new-hub.example/", topic_url=FORUM_URL, now=later,
        token="token-failed", secret="secret-failed"))
    failed = await websub_store.for_feed(database, forum_id)
    assert failed is not None
    await websub_store.record_failure(database, failed.id, "HTTP 500 from the hub", now=later,
                                      retry_at=later + timedelta(hours=1))


def _fields(message: IncomingMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in IncomingMessage.__dataclass_fields__}


async def _bulk_comments(database: Database, thread_ids: list[int], count: int, start: datetime) -> None:
    authors = [(ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")]
    for offset in range(0, count, 1000):
        batch = []
        for number in range(offset, min(offset + 1000, count)):
            author_id, name = authors[number % 3]
            text = f"Comment {number}: a reply of ordinary length about the post, with a few words more."
            batch.append((chat(thread_ids[number % len(thread_ids)], text, author_id=author_id, author_name=name,
                               at=start + timedelta(milliseconds=number)), text))
        await database.write(comment_store.store_comments(batch))


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table's rows (all columns, in column order), sorted."""
    connection = connect_read_only(path)
    try:
        return {table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in COPIED_TABLES}
    finally:
        connection.close()


async def postgresql_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = await asyncpg.connect(url)
    try:
        return {table: sorted((tuple(row) for row in await connection.fetch(f"SELECT * FROM {table}")), key=repr)
                for table in COPIED_TABLES}
    finally:
        await connection.close()
