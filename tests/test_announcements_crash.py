"""Exactly once through crashes: the bot is stopped at each step of an announcement (a real stop:
gateway closed, loops cancelled, database closed), a new bot starts on the same database file, and
every post ends with exactly one message and one thread."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.announce.machine import INVITE_LINE, STEPS
from bot.storage.db import Database
from tests.announcements_support import (
    QueuedPost,
    announcement,
    first_cycle,
    later,
    make_settings,
    queue_post,
    running_bot,
    thread_rows,
)
from tests.fakediscord import FakeDiscord, Message
from tests.fakediscord.harness import World


class StopAt:
    """A step hook that parks the bot at one step of one announcement, until the bot is stopped."""

    def __init__(self, step: str, announcement_id: int) -> None:
        self.step = step
        self.announcement_id = announcement_id
        self.reached = asyncio.Event()

    async def __call__(self, step: str, announcement_id: int) -> None:
        if step == self.step and announcement_id == self.announcement_id:
            self.reached.set()
            await asyncio.Event().wait()  # cancelled when the bot stops


# What the database says at each stop (forums create message and thread in one call).
EXPECTED_AT_STOP = {
    ("text", "pending_recorded"): ("pending", False, False),
    ("text", "message_sent"): ("pending", True, False),
    ("text", "message_recorded"): ("sent", True, False),
    ("text", "thread_created"): ("sent", True, True),
    ("text", "thread_recorded"): ("threaded", True, True),
    ("forum", "pending_recorded"): ("pending", False, False),
    ("forum", "message_sent"): ("pending", True, True),
    ("forum", "thread_created"): ("pending", True, True),
    ("forum", "thread_recorded"): ("threaded", True, True),
}


def starters(emulator: FakeDiscord, kind: str, world: World, post: QueuedPost) -> list[Message]:
    """The announcement messages of ``post``: in the channel, or as starters of forum posts."""
    if kind == "text":
        return [m for m in emulator.bot_messages(world.announcements)
                if m.embeds and m.embeds[0].get("url") == post.url]
    return [m for thread in emulator.threads_in(world.forum) for m in emulator.messages(thread)
            if m.id == thread.id and m.embeds and m.embeds[0].get("url") == post.url]


@pytest.mark.parametrize(("kind", "step"), sorted(EXPECTED_AT_STOP))
async def test_stopped_at_a_step_then_restarted_announces_exactly_once(
        emulator: FakeDiscord, world: World, tmp_path: Path, kind: str, step: str) -> None:
    assert step in STEPS
    channel = world.announcements if kind == "text" else world.forum
    settings = make_settings(tmp_path)
    database = await Database.open(settings.database_path)
    posts = [await queue_post(database, world.guild.id, channel.id, title=f"Post number {n}",
                              published_at=later(n)) for n in range(3)]
    await database.close()
    victim = posts[1]
    stop = StopAt(step, victim.announcement_id)

    async with running_bot(emulator, settings, step_hook=stop):
        await asyncio.wait_for(stop.reached.wait(), timeout=10)
    # The bot is stopped; what it left behind is what a crash at this step leaves.
    database = await Database.open(settings.database_path)
    row = await announcement(database, victim.announcement_id)
    await database.close()
    state, message_exists, thread_exists = EXPECTED_AT_STOP[(kind, step)]
    assert row["state"] == state
    assert len(starters(emulator, kind, world, victim)) == int(message_exists)
    victim_threads = [t for t in emulator.threads_in(channel) if t.name == victim.title]
    assert len(victim_threads) == int(thread_exists)

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
