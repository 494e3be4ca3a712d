"""A SIGKILL during a push-triggered announcement: every pushed post is still announced exactly once,
with exactly one thread, and none is missing.

The bot runs in a process of its own (``bot.__main__.run_bot``, the real start-up: web server, WebSub
callback, gateway, cogs) against the Discord emulator, with a live WebSub subscription at the test
hub of tests/websub_support.py. The hub pushes a document with three new posts; the emulator holds
one request of the second post's announcement (the message not carried out, the message carried out
but its answer lost, or the thread carried out but its answer lost) and the test kills the process
with SIGKILL while it waits. A new process on the same database finishes the work.

The feed server keeps serving the document from before the push, so the pushed posts can only come
from what the push stored before the kill: a push that was not committed would leave them missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.announce.machine import INVITE_LINE
from tests.conftest import TEST_TUNING, bot_settings
from tests.fakediscord import FakeDiscord, Message
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, Item, numbered_items
from tests.process_support import BotProcess, until
from tests.web_support import free_port
from tests.websub_support import TestHub, rss_with_hub

SEND = "POST /channels/{channel_id}/messages"
THREAD_FROM_MESSAGE = "POST /channels/{channel_id}/messages/{message_id}/threads"
TUNING = replace(TEST_TUNING, websub_tick_seconds=0.1, websub_retry_first_seconds=3600.0)

@dataclass(frozen=True)
class KillPoint:
    route: str
    applied: bool  # carried out by Discord before the kill (its answer never came back)
    state: str  # the victim's announcement state the kill leaves
    message_exists: bool
    thread_exists: bool


KILL_POINTS = {
    "message_not_sent": KillPoint(SEND, False, "pending", False, False),
    "message_sent_answer_lost": KillPoint(SEND, True, "pending", True, False),
    "thread_created_answer_lost": KillPoint(THREAD_FROM_MESSAGE, True, "sent", True, True),
}


def pushed_items(now: datetime) -> list[Item]:
    """Three new posts, newest first, a minute apart."""
    return [Item(f"Pushed post {n}", f"https://blog.example.com/pushed-{n}/", f"pushed-{n}",
                 now - timedelta(minutes=4 - n), f"<p>Body of pushed post {n}</p>") for n in (3, 2, 1)]


def read(database: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """A read of the bot's database from the test process (the bot may be writing it)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute(sql, parameters))


def announcement_of(database: Path, url: str) -> sqlite3.Row | None:
    rows = read(database, "SELECT a.* FROM announcements a JOIN posts p ON p.id = a.post_id "
                          "WHERE p.canonical_url = ?", (url,))
    return rows[0] if rows else None


def announcements_of(emulator: FakeDiscord, world: World, item: Item) -> list[Message]:
    return [m for m in emulator.bot_messages(world.announcements)
            if m.embeds and m.embeds[0].get("url") == item.link]


def holds(point: KillPoint, victim: Item) -> Callable[[web.Request, Any], bool]:
    def match(request: web.Request, body: Any) -> bool:
        if point.route == SEND:
            embeds = (body or {}).get("embeds") or [{}]
            return bool(embeds[0].get("url") == victim.link)
        return bool((body or {}).get("name") == victim.title)

    return match


@pytest.mark.parametrize("point_name", sorted(KILL_POINTS))
async def test_sigkill_during_a_pushed_announcement_announces_each_post_exactly_once(
        emulator: FakeDiscord, world: World, tmp_path: Path, point_name: str) -> None:
    point = KILL_POINTS[point_name]
    started: list[BotProcess] = []
    hub = await TestHub().start()
    feeds = await FeedServer().start()
    try:
        feed_url = feeds.url("/feed.xml")
        old = numbered_items(3, newest=datetime.now(UTC) - timedelta(hours=3))
        feeds.serve("/feed.xml", rss_with_hub(old, hub=hub.url, self_url=feed_url))
        port = free_port()
        settings = bot_settings(emulator, tmp_path, tuning=TUNING, web_port=port,
                                public_url=f"http://127.0.0.1:{port}", allow_private_feeds=True,
                                feed_urls=(feed_url,), announce_channel_id=world.announcements.id,
                                poll_interval_seconds=60, announcements_per_cycle=10)
        database = settings.database_path
        bot = BotProcess(settings, tmp_path / "bot.log")
        started.append(bot)

        await bot.start()
        await until(lambda: hub.subscribers, bot, "a live WebSub subscription")
        pushed = pushed_items(datetime.now(UTC))
        victim = pushed[1]  # the second oldest: one pushed post goes out before it, one after
        held = emulator.hold(point.route, holds(point, victim), applied=point.applied)
        assert await hub.publish(feed_url, rss_with_hub(pushed + old, hub=hub.url, self_url=feed_url)) == [202]
        await until(held.reached.is_set, bot, "the victim's announcement request")
        if point.state == "sent":  # the message was recorded before the thread request went out
            await until(lambda: (announcement_of(database, victim.link) or {"state": ""})["state"] == "sent", bot,
                        "the victim's message recorded")
        await bot.kill()
        held.release()

        # What the kill left: the push stored all three posts and its wake-up was announcing them in
        # order, oldest first: the oldest done, the victim stopped mid-way, the newest not started.
        states = [(announcement_of(database, item.link) or {"state": None})["state"] for item in pushed]
        assert states == ["queued", point.state, "threaded"]  # pushed is newest first, as in the feed
        assert len(announcements_of(emulator, world, victim)) == int(point.message_exists)
        assert len([t for t in emulator.threads_in(world.announcements) if t.name == victim.title]) == int(
            point.thread_exists)

        restarted = BotProcess(settings, tmp_path / "restarted.log")
        started.append(restarted)
        await restarted.start()
        await until(lambda: all((announcement_of(database, item.link) or {"state": ""})["state"] == "threaded"
                                for item in pushed), restarted, "every pushed post threaded")
        await until(lambda: all(invites(emulator, world, item) for item in pushed), restarted,
                    "every invitation line")
        assert await restarted.stop() == 0, restarted.log()

        threads = {row["post_id"]: row for row in read(database, "SELECT * FROM threads")}
        for item in pushed:
            stored = announcement_of(database, item.link)
            assert stored is not None
            [message] = announcements_of(emulator, world, item)
            [thread] = [t for t in emulator.threads_in(world.announcements) if t.name == item.title]
            assert stored["message_id"] == message.id and stored["thread_id"] == thread.id == message.id
            assert threads[stored["post_id"]]["thread_id"] == thread.id
            assert invites(emulator, world, item) == [INVITE_LINE]
        # Nothing else was announced twice either: one message per announcement the database knows.
        announced = read(database, "SELECT message_id FROM announcements WHERE message_id IS NOT NULL")
        starters = [m for m in emulator.bot_messages(world.announcements) if m.embeds]
        assert sorted(m.id for m in starters) == sorted(row["message_id"] for row in announced)
        assert len(emulator.threads_in(world.announcements)) == len(announced) == len(threads)
    finally:
        for process in started:  # whatever failed, no bot outlives the test
            if process.process is not None and process.process.returncode is None:
                await process.kill()
        await hub.close()
        await feeds.close()


def invites(emulator: FakeDiscord, world: World, item: Item) -> list[str]:
    threads = [t for t in emulator.threads_in(world.announcements) if t.name == item.title]
    return [m.content for t in threads for m in emulator.bot_messages(t) if m.id != t.id]

