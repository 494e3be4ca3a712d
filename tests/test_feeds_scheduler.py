"""FeedScheduler with a fake clock, a real local feed server and a temporary database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.config import Settings
from bot.feeds.fetch import FetchTimeouts, new_feed_session
from bot.feeds.scheduler import (
    MAX_BACKOFF_SECONDS,
    FeedScheduler,
    backoff_seconds,
    next_slot,
    url_offset,
)
from bot.storage import feeds as feed_store
from bot.storage.db import Database, from_db_time
from tests.feeds_support import FakeClock, FeedServer, Item, numbered_items, rss_document

GUILD = 111111111111111111
CHANNEL = 222222222222222222
INTERVAL = 600


@dataclass
class World:
    server: FeedServer
    database: Database
    session: aiohttp.ClientSession
    clock: FakeClock
    scheduler: FeedScheduler

    async def add(self, path: str, *, backfill: int = 1, guild: int = GUILD) -> feed_store.Feed:
        return await feed_store.register_feed(
            self.database, guild_id=guild, url=self.server.url(path), channel_id=CHANNEL, backfill=backfill,
            now=self.clock(),
        )

    async def announcements(self) -> list[tuple[str, str]]:
        rows = await self.database.fetch_all(
            "SELECT p.title, a.state FROM announcements a JOIN posts p ON p.id = a.post_id ORDER BY a.id"
        )
        return [(row["title"], row["state"]) for row in rows]

    async def queued_titles(self) -> list[str]:
        return [title for title, state in await self.announcements() if state == "queued"]

    async def feed(self, feed_id: int) -> feed_store.Feed:
        feed = await feed_store.get_feed(self.database, feed_id)
        assert feed is not None
        return feed


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    server = await FeedServer().start()
    database = await Database.open(tmp_path / "feeds.db")
    session = new_feed_session(timeouts=FetchTimeouts(connect=1, total=2))
    clock = FakeClock()
    settings = Settings(discord_token="t" * 30, poll_interval_seconds=INTERVAL, feed_concurrency=8,
                        allow_private_feeds=True)
    scheduler = FeedScheduler(database, session, settings, clock=clock, timeouts=FetchTimeouts(connect=1, total=2))
    yield World(server, database, session, clock, scheduler)
    await session.close()
    await database.close()
    await server.close()


async def test_first_add_announces_only_the_backfill(world: World) -> None:
    world.server.serve("/feed", rss_document(numbered_items(5)))
    feed = await world.add("/feed", backfill=2)
    outcome = await world.scheduler.poll_feed(feed.id)
    assert (outcome.status, outcome.new_posts, outcome.queued) == ("changed", 5, 2)
    assert await world.announcements() == [
        ("Post 1", "skipped"), ("Post 2", "skipped"), ("Post 3", "skipped"), ("Post 4", "queued"),
        ("Post 5", "queued"),
    ]
    stored = await world.feed(feed.id)
    assert stored.initialized and stored.title == "Test Blog" and stored.consecutive_failures == 0


async def test_backfill_zero_announces_nothing_on_first_add(world: World) -> None:
    world.server.serve("/feed", rss_document(numbered_items(3)))
    feed = await world.add("/feed", backfill=0)
    await world.scheduler.poll_feed(feed.id)
    assert [state for _, state in await world.announcements()] == ["skipped"] * 3


async def test_new_items_are_queued_and_unchanged_feeds_are_not_parsed(world: World) -> None:
    served = world.server.serve("/feed", rss_document(numbered_items(3)), etag='"v1"')
    feed = await world.add("/feed")
    await world.scheduler.poll_feed(feed.id)
    assert (await world.scheduler.poll_feed(feed.id)).status == "not_modified"
    assert world.server.requests[-1].headers["If-None-Match"] == '"v1"'
    # Same body without validators: the body hash says "unchanged".
    served.etag = None
    assert (await world.scheduler.poll_feed(feed.id)).status == "unchanged"
    served.body = rss_document(numbered_items(4))
    outcome = await world.scheduler.poll_feed(feed.id)
    assert (outcome.status, outcome.new_posts, outcome.queued) == ("changed", 1, 1)
    assert await world.queued_titles() == ["Post 3", "Post 4"]


async def test_polls_are_spread_by_a_fixed_per_url_offset(world: World) -> None:
    world.server.serve("/feed", rss_document(numbered_items(1)))
    feed = await world.add("/feed")
    outcome = await world.scheduler.poll_feed(feed.id)
    assert outcome.next_poll_at == next_slot(feed.url, world.clock(), INTERVAL)
    assert outcome.next_poll_at is not None
    assert int(outcome.next_poll_at.timestamp()) % INTERVAL == url_offset(feed.url, INTERVAL)
    assert world.clock() < outcome.next_poll_at <= world.clock() + timedelta(seconds=INTERVAL)
    offsets = {url_offset(f"https://blog{n}.example.com/feed", INTERVAL) for n in range(50)}
    assert len(offsets) > 40  # different URLs land in different slots


async def test_failures_back_off_then_disable_with_one_notice(world: World) -> None:
    world.server.status("/feed", 500)
    feed = await world.add("/feed")
    delays = []
    for attempt in range(1, 11):
        outcome = await world.scheduler.poll_feed(feed.id)
        assert outcome.next_poll_at is not None
        delays.append((outcome.next_poll_at - world.clock()).total_seconds())
        assert outcome.status == ("disabled" if attempt == 10 else "failed")
        world.clock.jump_to(outcome.next_poll_at)
    assert delays[:4] == [1200, 2400, 4800, 9600]
    assert max(delays) == MAX_BACKOFF_SECONDS == delays[-1]
    stored = await world.feed(feed.id)
    assert stored.consecutive_failures == 10
    assert stored.disabled_reason is not None and "answered HTTP 500" in stored.disabled_reason
    notices = await feed_store.pending_feed_notices(world.database)
    assert [(notice.kind, notice.channel_id) for notice in notices] == [("disabled", CHANNEL)]
    assert "turned off" in notices[0].message and "HTTP 500" in notices[0].message
    await feed_store.mark_feed_notice_sent(world.database, notices[0])
    assert await feed_store.pending_feed_notices(world.database) == []
    # A disabled feed is not polled by the cycle.
    world.clock.advance(10 * 86400)
    hits = world.server.hits("/feed")
    assert (await world.scheduler.run_due()).polled == 0
    assert world.server.hits("/feed") == hits
    # Turned back on, it is polled again.
    await feed_store.enable_feed(world.database, feed.id, now=world.clock())
    assert (await world.scheduler.run_due()).polled == 1


async def test_a_success_resets_the_failure_count(world: World) -> None:
    world.server.status("/feed", 500)
    feed = await world.add("/feed")
    for _ in range(3):
        await world.scheduler.poll_feed(feed.id)
    assert (await world.feed(feed.id)).consecutive_failures == 3
    world.server.serve("/feed", rss_document(numbered_items(2)))
    await world.scheduler.poll_feed(feed.id)
    stored = await world.feed(feed.id)
    assert (stored.consecutive_failures, stored.last_error) == (0, None)
    assert stored.last_success_at == world.clock()


async def test_retry_after_is_honoured(world: World) -> None:
    world.server.status("/feed", 429, {"Retry-After": "7200"})
    feed = await world.add("/feed")
    outcome = await world.scheduler.poll_feed(feed.id)
    assert outcome.next_poll_at == world.clock() + timedelta(seconds=7200)
    stored = await world.feed(feed.id)
    assert stored.next_poll_at == outcome.next_poll_at
    assert stored.last_error is not None and "HTTP 429" in stored.last_error


async def test_no_flood_after_an_outage(world: World) -> None:
    world.server.serve("/feed", rss_document(numbered_items(20)))
    feed = await world.add("/feed")
    await world.scheduler.poll_feed(feed.id)
    world.server.status("/feed", 503)
    for _ in range(5):
        await world.scheduler.poll_feed(feed.id)
    world.clock.advance(30 * 86400)
    # Back after a month: two genuinely new posts, and twelve old ones whose guids and links the
    # blog rewrote (a migration) — those must not be announced as new.
    new = numbered_items(2, start=21, newest=world.clock() - timedelta(hours=1))
    rewritten = numbered_items(12, start=9, host="new-host.example.com", guid_prefix="migrated-",
                               newest=datetime(2026, 11, 1, tzinfo=UTC))
    world.server.serve("/feed", rss_document(new + rewritten))
    outcome = await world.scheduler.poll_feed(feed.id)
    assert (outcome.new_posts, outcome.queued) == (14, 2)
    assert await world.queued_titles() == ["Post 20", "Post 21", "Post 22"]


async def test_many_new_posts_in_one_poll_are_capped(world: World) -> None:
    world.server.serve("/feed", rss_document(numbered_items(1)))
    feed = await world.add("/feed")
    await world.scheduler.poll_feed(feed.id)
    world.server.serve("/feed", rss_document(numbered_items(30, start=2, newest=world.clock(),
                                                                    spacing=timedelta(hours=1))))
    outcome = await world.scheduler.poll_feed(feed.id)
    assert (outcome.new_posts, outcome.queued) == (30, 10)
    assert (await world.queued_titles())[-10:] == [f"Post {n}" for n in range(22, 32)]


async def test_one_post_through_two_feeds_gets_one_announcement(world: World) -> None:
    items = numbered_items(3)
    world.server.serve("/rss", rss_document(items))
    # The same posts in a second feed: other guids, tracking parameters and upper-case host.
    other = [replace(item, guid=f"other-{item.guid}", link=item.link.replace("blog.example.com", "BLOG.example.com")
                     + "?utm_source=feed") for item in items]
    world.server.serve("/atom", rss_document(other))
    first = await world.add("/rss", backfill=3)
    second = await world.add("/atom", backfill=3)
    await world.scheduler.poll_feed(first.id)
    outcome = await world.scheduler.poll_feed(second.id)
    assert (outcome.new_posts, outcome.queued) == (0, 0)
    assert len(await world.announcements()) == 3
    new_item = Item("Post 4", "https://blog.example.com/4/?utm_medium=x", "other-post-4",
                    world.clock() - timedelta(minutes=5))
    world.server.serve("/atom", rss_document([new_item, *other]))
    world.server.serve("/rss", rss_document([replace(new_item, guid="post-4", link="https://blog.example.com/4/"),
                                             *items]))
    assert (await world.scheduler.poll_feed(second.id)).queued == 1
    assert (await world.scheduler.poll_feed(first.id)).queued == 0
    assert await world.database.fetch_value("SELECT COUNT(*) FROM posts") == 4
    assert await world.database.fetch_value("SELECT COUNT(*) FROM announcements") == 4


async def test_a_moved_feed_keeps_its_posts_and_is_reported(world: World) -> None:
    world.server.serve("/old", rss_document(numbered_items(3)))
    feed = await world.add("/old")
    await world.scheduler.poll_feed(feed.id)
    world.server.serve("/new", rss_document(numbered_items(4)))
    world.server.redirect("/old", "/new", 301)
    outcome = await world.scheduler.poll_feed(feed.id)
    assert outcome.moved_to == world.server.url("/new")
    assert (outcome.new_posts, outcome.queued) == (1, 1)
    stored = await world.feed(feed.id)
    assert stored.url == world.server.url("/new") and stored.moved_from_url == world.server.url("/old")
    notices = await feed_store.pending_feed_notices(world.database)
    assert [notice.kind for notice in notices] == ["moved"]
    assert world.server.url("/old") in notices[0].message and world.server.url("/new") in notices[0].message
    await feed_store.mark_feed_notice_sent(world.database, notices[0])
    assert await feed_store.pending_feed_notices(world.database) == []
    await world.scheduler.poll_feed(feed.id)
    assert world.server.requests[-1].path == "/new"
    assert await world.queued_titles() == ["Post 3", "Post 4"]


async def test_an_updated_post_is_marked_for_editing(world: World) -> None:
    items = numbered_items(2)
    world.server.serve("/feed", rss_document(items))
    feed = await world.add("/feed", backfill=2)
    await world.scheduler.poll_feed(feed.id)
    # The announcer has sent Post 2; Post 1 is still queued.
    await world.database.write(lambda connection: connection.execute(
        "UPDATE announcements SET state = 'sent', message_id = 1 WHERE post_id = "
        "(SELECT id FROM posts WHERE title = 'Post 2')"))
    changed = [replace(items[0], title="Post 2 (corrected)", description="<p>New text</p>"),
               replace(items[1], title="Post 1 (corrected)")]
    world.server.serve("/feed", rss_document(changed))
    outcome = await world.scheduler.poll_feed(feed.id)
    assert (outcome.updated_posts, outcome.new_posts, outcome.queued) == (2, 0, 0)
    rows = await world.database.fetch_all(
        "SELECT p.title, p.summary, a.state, a.needs_edit FROM posts p JOIN announcements a ON a.post_id = p.id "
        "ORDER BY p.id"
    )
    assert [tuple(row) for row in rows] == [
        ("Post 1 (corrected)", "Body of post 1", "queued", 0),
        ("Post 2 (corrected)", "New text", "sent", 1),
    ]


async def test_run_due_polls_due_feeds_within_the_concurrency_limit(world: World) -> None:
    for n in range(6):
        world.server.slow(f"/f{n}", 0.2, rss_document(numbered_items(1, start=n * 10 + 1)))
    feeds = [await world.add(f"/f{n}") for n in range(6)]
    await feed_store.set_paused(world.database, feeds[5].id, True)
    world.scheduler.settings = replace(world.scheduler.settings, feed_concurrency=2)
    report = await world.scheduler.run_due()
    assert report.polled == 5 and report.changed == 5 and report.failed == 0
    assert world.server.max_in_flight == 2
    assert world.server.hits("/f5") == 0
    # Nothing is due until each feed's slot comes.
    assert (await world.scheduler.run_due()).polled == 0
    world.clock.advance(INTERVAL)
    assert (await world.scheduler.run_due()).polled == 5


async def test_register_feed_is_idempotent_and_lists_status(world: World) -> None:
    first = await world.add("/feed")
    again = await feed_store.register_feed(world.database, guild_id=GUILD, url=world.server.url("/feed"),
                                           channel_id=999, now=world.clock())
    assert again == first
    assert await feed_store.find_feed(world.database, GUILD, world.server.url("/feed")) == first
    world.server.serve("/feed", rss_document(numbered_items(2)))
    await world.scheduler.poll_feed(first.id)
    await world.database.write(lambda connection: connection.execute("UPDATE announcements SET state = 'sent'"))
    [status] = await feed_store.list_feeds(world.database, GUILD)
    assert status.posts_announced == 2 and status.last_success_at == world.clock()
    assert await feed_store.list_feeds(world.database, 5) == []
    assert await feed_store.remove_feed(world.database, guild_id=5, feed_id=first.id) is False
    assert await feed_store.remove_feed(world.database, guild_id=GUILD, feed_id=first.id) is True
    assert await world.database.fetch_value("SELECT COUNT(*) FROM posts WHERE feed_id IS NULL") == 2


def test_backoff_formula() -> None:
    assert [backoff_seconds(600, n) for n in (1, 2, 3)] == [1200, 2400, 4800]
    assert backoff_seconds(600, 40) == MAX_BACKOFF_SECONDS
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    slot = next_slot("https://a.example/feed", moment, 600)
    assert from_db_time(slot.isoformat()) == slot and slot > moment
