"""Two bot processes, one shard each of two, sharing one PostgreSQL database, against the emulator:
each guild's announcement and thread exactly once, comments from both guilds in the one database,
one process elected for the once-per-bot work, and a takeover when that process is killed
mid-announcement that loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.storage.db import Database
from bot.storage.postgres_engine import open_postgresql
from tests.announcements_support import QueuedPost, add_feed, announcement_messages, queue_post
from tests.conftest import TEST_TUNING, bot_settings
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.fakediscord.models import Channel
from tests.feeds_support import FeedServer, numbered_items, rss_document
from tests.process_support import BotProcess, until
from tests.test_shards_discord import guild_on_shard

TUNING = replace(TEST_TUNING, election_interval_seconds=0.2)
ELECTED = "took the bot-wide role"
SEND = "POST /channels/{channel_id}/messages"


def process_settings(emulator: FakeDiscord, folder: Path, url: str, shard_id: int, **overrides: Any) -> Settings:
    return bot_settings(emulator, folder, tuning=TUNING, database_url=url, shard_count=2, shard_ids=(shard_id,),
                        announcements_per_cycle=10, **overrides)


@contextlib.asynccontextmanager
async def two_processes(emulator: FakeDiscord, tmp_path: Path, url: str,
                        **overrides: Any) -> AsyncIterator[list[BotProcess]]:
    processes = [BotProcess(process_settings(emulator, tmp_path, url, shard, **overrides),
                            tmp_path / f"shard{shard}.log") for shard in (0, 1)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.process is not None:
                await process.kill()


def exactly_once(emulator: FakeDiscord, channel: Channel, posts: list[QueuedPost]) -> bool:
    """Each post has one announcement message in ``channel`` and one thread on it; nothing else."""
    messages = announcement_messages(emulator, channel.id)
    urls = [message.embeds[0].get("url") for message in messages]
    if sorted(urls) != sorted(post.url for post in posts):
        return False
    threads = {thread.id for thread in emulator.threads_in(channel)}
    return threads == {message.id for message in messages}


async def stored_texts(database: Database) -> set[str]:
    return {row["content"] for row in await database.fetch_all("SELECT content FROM comments WHERE is_bot = 0")}


async def eventually(condition: Any, processes: list[BotProcess], what: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until the coroutine function ``condition`` is true, failing with both logs."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(p.tail() for p in processes))
        await asyncio.sleep(0.1)


async def test_two_processes_one_database_each_guild_announced_once_and_comments_from_both(
        emulator: FakeDiscord, world: World, tmp_path: Path, postgresql_url: str) -> None:
    (first, first_channel), (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    database = await open_postgresql(postgresql_url)
    try:
        first_posts = [await queue_post(database, first.id, first_channel.id, title=f"Shard zero post {n}")
                       for n in range(3)]
        second_posts = [await queue_post(database, second.id, second_channel.id, title=f"Shard one post {n}")
                        for n in range(3)]
        async with two_processes(emulator, tmp_path, postgresql_url) as processes:
            for process in processes:
                await process.start()
            for process in processes:
                await until(lambda process=process: "catch-up of" in process.log(), process,
                            "the process's shard ready and caught up", timeout=60)
            assert sorted(emulator.gateway.identified_shards) == [(0, 2), (1, 2)]
            await until(lambda: exactly_once(emulator, first_channel, first_posts)
                        and exactly_once(emulator, second_channel, second_posts), processes[0],
                        "one announcement and thread per post in both guilds")
            assert sum(ELECTED in process.log() for process in processes) == 1
            threads = {channel.id: {t.name: t for t in emulator.threads_in(channel)}
                       for channel in (first_channel, second_channel)}
            emulator.send_message(threads[first_channel.id]["Shard zero post 0"], world.alice, "said on shard zero")
            emulator.send_message(threads[second_channel.id]["Shard one post 2"], world.bob, "said on shard one")

            async def both_stored() -> bool:
                return {"said on shard zero", "said on shard one"} <= await stored_texts(database)

            await eventually(both_stored, processes, "the comments of both guilds in the database")
            for process in processes:
                assert await process.stop() == 0, process.tail()
            assert exactly_once(emulator, first_channel, first_posts)
            assert exactly_once(emulator, second_channel, second_posts)
    finally:
        await database.close()


async def test_killing_the_elected_process_mid_announcement_loses_and_duplicates_nothing(
        emulator: FakeDiscord, world: World, tmp_path: Path, postgresql_url: str) -> None:
    (first, first_channel), (second, second_channel) = (guild_on_shard(emulator, world, shard) for shard in (0, 1))
    database = await open_postgresql(postgresql_url)
    try:
        first_posts = [await queue_post(database, first.id, first_channel.id, title=f"Zero {n}") for n in range(4)]
        second_posts = [await queue_post(database, second.id, second_channel.id, title=f"One {n}") for n in range(4)]
        victim = first_posts[2]

        def is_victim(request: web.Request, body: Any) -> bool:
            embeds = (body or {}).get("embeds") or [{}]
            return bool(embeds[0].get("url") == victim.url)

        # The victim's message is sent but its answer never reaches the elected process.
        held = emulator.hold(SEND, is_victim, applied=True)
        async with two_processes(emulator, tmp_path, postgresql_url) as processes:
            await processes[0].start()
            await until(lambda: ELECTED in processes[0].log(), processes[0], "shard 0's process elected", timeout=60)
            await processes[1].start()
            await until(held.reached.is_set, processes[0], "the victim's announcement request", timeout=60)
            await processes[0].kill()
            killed_at = time.monotonic()
            held.release()
            await until(lambda: ELECTED in processes[1].log(), processes[1], "the other process elected")
            failover = time.monotonic() - killed_at
            print(f"failover: the other process took the bot-wide role {failover:.2f} s after the kill "
                  f"(election interval {TUNING.election_interval_seconds} s)")
            await until(lambda: exactly_once(emulator, first_channel, first_posts)
                        and exactly_once(emulator, second_channel, second_posts), processes[1],
                        "every post announced exactly once after the takeover", timeout=60)
            states = {row["state"] for row in await database.fetch_all("SELECT state FROM announcements")}
            assert states == {"threaded"}
            assert await processes[1].stop() == 0, processes[1].tail()
    finally:
        await database.close()


async def test_posts_a_follower_stores_are_announced_at_once_by_the_elected_process(
        emulator: FakeDiscord, world: World, tmp_path: Path, postgresql_url: str) -> None:
    """``/feed poll`` in a guild of the other shard runs in the process that is not elected; its
    wake-up reaches the elected one (the announcement interval is an hour: only the wake-up can)."""
    guild_on_shard(emulator, world, 0)
    second, second_channel = guild_on_shard(emulator, world, 1)
    server = await FeedServer().start()
    database = await open_postgresql(postgresql_url)
    try:
        server.serve("/feed.xml", rss_document(numbered_items(1, newest=datetime.now(UTC) - timedelta(minutes=1))))
        feed_id = await add_feed(database, second.id, second_channel.id, url=server.url("/feed.xml"))
        async with two_processes(emulator, tmp_path, postgresql_url, allow_private_feeds=True) as processes:
            await processes[0].start()
            await until(lambda: ELECTED in processes[0].log(), processes[0], "shard 0's process elected", timeout=60)
            await processes[1].start()
            await until(lambda: "catch-up of" in processes[1].log(), processes[1], "shard 1 ready", timeout=60)
            answer = emulator.invoke("feed poll", world.owner, second_channel, {"feed": str(feed_id)})
            assert "1 new post" in await answer.answer_text()
            await until(lambda: len(announcement_messages(emulator, second_channel.id)) == 1, processes[0],
                        "the elected process announcing the follower's post", timeout=15)
            assert ELECTED not in processes[1].log()
    finally:
        await database.close()
        await server.close()
