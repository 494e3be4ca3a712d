"""Exactly once through crashes: the bot is stopped at each point of an announcement (a real stop:
gateway closed, loops cancelled, database closed), a new bot starts on the same database file, and
every post ends with exactly one message, one thread and one invitation line.

The bot is stopped from outside, at what Discord and the database show: the emulator holds one REST
request of the announcement, either before carrying it out (the call never reached Discord) or after
(Discord did it, but the answer never came back), and the test stops the bot while it waits.
Each machine step lies between two Discord calls, so holding the next call stops the bot right after
the step before it was recorded:

- ``pending_recorded``: the message (forum post) request, not carried out;
- ``message_sent``: the message request, carried out, no answer;
- ``message_recorded``: the thread request, not carried out;
- ``thread_created``: the thread request, carried out, no answer;
- ``invite_posted``: the invitation line, carried out, no answer (thread made, row not written yet);
- ``thread_recorded``: the next post's message (forum post) request, not carried out, once the
  database shows this post threaded.

A forum post is its message and its thread at once (one request), so its ``message_sent`` and
``thread_created`` were the same point of the code; ``forum_post_created`` is that point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.__main__ import open_database
from bot.announce.machine import INVITE_LINE
from bot.storage.db import Database
from tests.announcements_support import (
    QueuedPost,
    announcement,
    first_cycle,
    later,
    queue_post,
    thread_rows,
    wait_for,
)
from tests.conftest import BOTH_ENGINES, bot_settings, running_bot
from tests.fakediscord import FakeDiscord, Message
from tests.fakediscord.harness import World

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

SEND = "POST /channels/{channel_id}/messages"
THREAD_FROM_MESSAGE = "POST /channels/{channel_id}/messages/{message_id}/threads"
FORUM_POST = "POST /channels/{channel_id}/threads"

Match = Callable[[web.Request, Any], bool]


@dataclass(frozen=True)
class StopPoint:
    route: str
    request: str  # whose request is held: "announcement", "invite", or "next" (the next post's)
    applied: bool  # carried out by Discord before the stop
    state: str  # the announcement's state after the stop
    message_exists: bool
    thread_exists: bool


STOP_POINTS = {
    ("text", "pending_recorded"): StopPoint(SEND, "announcement", False, "pending", False, False),
    ("text", "message_sent"): StopPoint(SEND, "announcement", True, "pending", True, False),
    ("text", "message_recorded"): StopPoint(THREAD_FROM_MESSAGE, "announcement", False, "sent", True, False),
    ("text", "thread_created"): StopPoint(THREAD_FROM_MESSAGE, "announcement", True, "sent", True, True),
    ("text", "invite_posted"): StopPoint(SEND, "invite", True, "threaded", True, True),
    ("text", "thread_recorded"): StopPoint(SEND, "next", False, "threaded", True, True),
    ("forum", "pending_recorded"): StopPoint(FORUM_POST, "announcement", False, "pending", False, False),
    ("forum", "forum_post_created"): StopPoint(FORUM_POST, "announcement", True, "pending", True, True),
    ("forum", "invite_posted"): StopPoint(SEND, "invite", True, "threaded", True, True),
    ("forum", "thread_recorded"): StopPoint(FORUM_POST, "next", False, "threaded", True, True),
}


def is_request_for(emu: FakeDiscord, post: QueuedPost, point: StopPoint) -> Match:
    """Which request of the announcement of ``post`` the stop point holds."""
    def announcement_of_post(request: web.Request, body: Any) -> bool:
        if point.route == SEND:
            embeds = (body or {}).get("embeds") or [{}]
            return bool(embeds[0].get("url") == post.url)
        return bool((body or {}).get("name") == post.title)  # a thread or forum post is named after it

    def invite_in_thread_of_post(request: web.Request, body: Any) -> bool:
        channel = emu.channel(int(request.match_info["channel_id"]))
        return bool((body or {}).get("content") == INVITE_LINE and channel.name == post.title)

    return invite_in_thread_of_post if point.request == "invite" else announcement_of_post


def starters(emulator: FakeDiscord, kind: str, world: World, post: QueuedPost) -> list[Message]:
    """The announcement messages of ``post``: in the channel, or as starters of forum posts."""
    if kind == "text":
        return [m for m in emulator.bot_messages(world.announcements)
                if m.embeds and m.embeds[0].get("url") == post.url]
    return [m for thread in emulator.threads_in(world.forum) for m in emulator.messages(thread)
            if m.id == thread.id and m.embeds and m.embeds[0].get("url") == post.url]


@pytest.mark.parametrize(("kind", "point_name"), sorted(STOP_POINTS))
async def test_stopped_at_a_step_then_restarted_announces_exactly_once(
        emulator: FakeDiscord, world: World, tmp_path: Path, kind: str, point_name: str) -> None:
    point = STOP_POINTS[(kind, point_name)]
    channel = world.announcements if kind == "text" else world.forum
    settings = bot_settings(emulator, tmp_path)
    database = await open_database(settings)
    posts = [await queue_post(database, world.guild.id, channel.id, title=f"Post number {n}",
                              published_at=later(n)) for n in range(3)]
    await database.close()
    victim = posts[1]
    held = emulator.hold(point.route, is_request_for(emulator, posts[2] if point.request == "next" else victim,
                                                     point), applied=point.applied)

    async with running_bot(emulator, settings) as bot:
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        recorded = await wait_for(lambda: _state_is(bot.database, victim.announcement_id, point.state))
        assert recorded
    # The bot is stopped (the held request died with it); what it left is what a crash there leaves.
    held.release()
    database = await open_database(settings)
    row = await announcement(database, victim.announcement_id)
    await database.close()
    assert row["state"] == point.state
    assert len(starters(emulator, kind, world, victim)) == int(point.message_exists)
    victim_threads = [t for t in emulator.threads_in(channel) if t.name == victim.title]
    assert len(victim_threads) == int(point.thread_exists)

    async with running_bot(emulator, settings) as bot:
        await first_cycle(bot)
        rows = {r["post_id"]: r for r in await thread_rows(bot.database)}
        for post in posts:
            stored = await announcement(bot.database, post.announcement_id)
            assert stored["state"] == "threaded", post.title
            [message] = starters(emulator, kind, world, post)
            assert stored["message_id"] == message.id
            [thread] = [t for t in emulator.threads_in(channel) if t.name == post.title]
            assert stored["thread_id"] == thread.id == message.id
            assert [m.content for m in emulator.bot_messages(thread) if m.id != thread.id] == [INVITE_LINE]
            assert rows[post.post_id]["thread_id"] == thread.id
        assert len(emulator.threads_in(channel)) == 3
        assert len(rows) == 3


async def _state_is(database: Database, announcement_id: int, state: str) -> bool:
    return (await announcement(database, announcement_id))["state"] == state
