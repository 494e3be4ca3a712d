"""Polling: which feeds are due, fetching and parsing them off the event loop, storing new posts
with their announcement rows, and the bookkeeping of failures (backoff, disable, notices).

Timing rules:

* A healthy feed is next polled at its own slot: ``offset + k * interval`` seconds since the epoch,
  where ``offset`` is a hash of its URL, so many feeds spread evenly over the interval.
* A failing feed waits ``interval * 2**failures`` (at most 24 h), longer if the server's
  Retry-After asks for it; after 10 failures in a row it is disabled with the reason stored.
* Announcements: see :mod:`bot.storage.posts` (first fetch announces only ``backfill`` items; old
  items surfacing late and anything beyond 10 per poll are recorded as ``skipped``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp

from bot.config import Settings
from bot.feeds.errors import FeedError, FeedRetryLater
from bot.feeds.fetch import FetchTimeouts, fetch_feed
from bot.feeds.filters import FeedFilter, FilterError, dropped_identities
from bot.feeds.models import FeedPreview, FetchResult, ParsedFeed, PollOutcome, PollReport, PollStatus
from bot.feeds.parse import parse_feed_in_worker
from bot.feeds.urls import canonicalize_url
from bot.storage import feeds as feed_store
from bot.storage import filters as filter_store
from bot.storage import posts as post_store
from bot.storage import websub as websub_store
from bot.storage.db import Database, utcnow
from bot.storage.feeds import Feed
from bot.storage.sql import Connection

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 10
MAX_BACKOFF_SECONDS = 24 * 3600
OLD_ITEM_GRACE = timedelta(days=7)
MAX_QUEUED_PER_POLL = 10
PREVIEW_ENTRIES = 3
INTERNAL_ERROR = "internal error while reading the feed (the bot's log has the details)"

Clock = Callable[[], datetime]


def url_offset(url: str, interval_seconds: int) -> int:
    """A fixed offset in [0, interval) derived from the URL: its slot within every interval."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, interval_seconds)


def next_slot(url: str, now: datetime, interval_seconds: int) -> datetime:
    """The first of the URL's slots strictly after ``now``."""
    interval = max(1, interval_seconds)
    offset = url_offset(url, interval)
    epoch = now.timestamp()
    slots = math.floor((epoch - offset) / interval) + 1
    return datetime.fromtimestamp(offset + slots * interval, tz=now.tzinfo)


def backoff_seconds(interval_seconds: int, failures: int) -> float:
    """``interval * 2**failures``, capped at 24 hours."""
    return float(min(interval_seconds * 2 ** min(failures, 32), MAX_BACKOFF_SECONDS))


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def preview_feed(session: aiohttp.ClientSession, url: str, *, allow_private: bool,
                       timeouts: FetchTimeouts | None = None) -> FeedPreview:
    """Fetch and parse once, storing nothing; raises a :class:`FeedError` with a message for the admin."""
    result = await fetch_feed(session, url, allow_private=allow_private, timeouts=timeouts)
    parsed = await parse_feed_in_worker(result.body, url=result.final_url, content_type=result.content_type)
    return FeedPreview(
        url=url, final_url=result.final_url, moved_to=result.moved_to, kind=parsed.kind, title=parsed.title,
        item_count=len(parsed.entries), newest=parsed.entries[:PREVIEW_ENTRIES], problem=parsed.problem,
    )


def announce_policy(feed: Feed) -> post_store.AnnouncePolicy:
    """Which new posts of a feed's document are announced (the same for a poll and a push)."""
    return post_store.AnnouncePolicy(
        first_fetch=not feed.initialized,
        backfill=feed.backfill,
        old_before=(feed.last_success_at - OLD_ITEM_GRACE) if feed.last_success_at else None,
        max_queued=max(feed.backfill, MAX_QUEUED_PER_POLL),
    )


def first_hub(result: FetchResult, parsed: ParsedFeed | None) -> str | None:
    """The WebSub hub to use: the Link header's first, else the document's (None: no push)."""
    hubs = result.hub_urls + (parsed.hub_urls if parsed is not None else ())
    return hubs[0] if hubs else None


async def filtered_out(database: Database, feed_id: int, parsed: ParsedFeed | None) -> frozenset[str]:
    """The identities the feed's filter drops (``/feed filter``); none without a filter. Polls and
    pushes both ask it."""
    if parsed is None or not parsed.entries:
        return frozenset()
    stored = await filter_store.get_filter(database, feed_id)
    if stored is None:
        return frozenset()
    try:
        feed_filter = FeedFilter.parse(stored.include, stored.exclude)
    except FilterError as error:  # checked when saved; a later version of the rules may refuse it
        log.warning("feed %d: its filter is not used: %s", feed_id, error)
        return frozenset()
    # Only new posts can be announced: matching the ones stored already would be wasted time
    # (a slow expression costs up to its time limit per post).
    known = await post_store.known_identities(database, feed_id, [entry.identity for entry in parsed.entries])
    return await dropped_identities(feed_filter, [e for e in parsed.entries if e.identity not in known])


async def store_pushed(database: Database, feed_id: int, parsed: ParsedFeed, now: datetime) -> PollOutcome:
    """Store the entries a hub pushed for a feed, under the same identity and announcement rules as
    a poll; the poll bookkeeping (validators, schedule, failures) is left alone. A paused or
    disabled feed takes nothing."""
    dropped = await filtered_out(database, feed_id, parsed)

    def op(connection: Connection) -> PollOutcome:
        feed = feed_store.load_feed_sync(connection, feed_id)
        if feed is None or feed.paused or feed.disabled:
            return PollOutcome(feed_id, "skipped", error="the feed is removed, paused or disabled")
        stored = post_store.store_entries_sync(
            connection, guild_id=feed.guild_id, feed_id=feed.id, channel_id=feed.channel_id,
            feed_title=parsed.title or feed.title, entries=parsed.entries, policy=announce_policy(feed), now=now,
            filtered_out=dropped)
        return PollOutcome(feed_id, "changed", new_posts=stored.new_posts, queued=stored.queued,
                           updated_posts=stored.updated)

    return await database.write(op)


class FeedScheduler:
    """Polls feeds. ``run_due`` once per tick (the cog's loop); ``poll_feed`` for ``/feed poll``.

    ``on_posts_stored`` is called (on the event loop) each time a poll's write committed posts to
    announce: the bot wakes its announcement loop with it, so they go out at once.
    """

    def __init__(self, database: Database, session: aiohttp.ClientSession, settings: Settings, *,
                 clock: Clock = utcnow, timeouts: FetchTimeouts | None = None,
                 on_posts_stored: Callable[[], None] | None = None) -> None:
        self.on_posts_stored = on_posts_stored
        self.database = database
        self.session = session
        self.settings = settings
        self.clock = clock
        self.timeouts = timeouts
        self._polling: dict[int, asyncio.Task[PollOutcome]] = {}

    @property
    def interval(self) -> int:
        return self.settings.poll_interval_seconds

    async def run_due(self) -> PollReport:
        """Poll every due feed (not paused, not disabled, next poll time reached), at most
        ``feed_concurrency`` at a time. One feed's failure never stops the others."""
        started = self.clock()
        began = time.perf_counter()
        due = await feed_store.due_feed_ids(self.database, started)
        pending = iter(due)
        outcomes: list[PollOutcome] = []

        async def worker() -> None:
            # A few workers pulling feed ids, rather than one task per feed: thousands of tasks
            # created at once would themselves stall the loop.
            for feed_id in pending:
                try:
                    outcomes.append(await self.poll_feed(feed_id, wait_for_commit=False))
                except Exception:  # one broken feed must not end the cycle
                    log.exception("polling feed %d failed", feed_id)
                    outcomes.append(PollOutcome(feed_id, "failed", error=INTERNAL_ERROR))

        workers = min(len(due), max(1, self.settings.feed_concurrency))
        await asyncio.gather(*(worker() for _ in range(workers)))
        await self.database.flush()  # the bookkeeping of unchanged feeds was only queued
        return PollReport(started, time.perf_counter() - began, tuple(outcomes))

    async def poll_feed(self, feed_id: int, *, wait_for_commit: bool = True) -> PollOutcome:
        """Poll one feed now (whatever its schedule) and store what it brought.

        With ``wait_for_commit=False`` the bookkeeping of an unchanged feed is only queued (one
        commit wait per unchanged feed would cost more than its whole poll); call
        ``database.flush()`` before relying on it.

        A poll of a feed that is being polled (``/feed poll`` during the loop's poll) fetches
        nothing itself: it shares the running poll's outcome, so the feed is fetched once and a
        failure is counted once.
        """
        running = self._polling.get(feed_id)
        if running is not None:
            outcome = await asyncio.shield(running)  # the other caller's poll goes on if this one is cancelled
            if wait_for_commit:
                await self.database.flush()
            return outcome
        poll = asyncio.ensure_future(self._poll(feed_id, wait_for_commit))
        self._polling[feed_id] = poll
        poll.add_done_callback(lambda _: self._polling.pop(feed_id, None))
        return await poll

    async def _poll(self, feed_id: int, wait_for_commit: bool) -> PollOutcome:
        feed = await feed_store.get_feed(self.database, feed_id)
        if feed is None:
            return PollOutcome(feed_id, "skipped", error="no such feed")
        now = self.clock()
        try:
            validators = feed.initialized
            result = await fetch_feed(
                self.session, feed.url,
                etag=feed.etag if validators else None,
                last_modified=feed.last_modified if validators else None,
                allow_private=self.settings.allow_private_feeds, timeouts=self.timeouts,
            )
            if result.not_modified:
                return await self._record_success(feed, result, None, None, now, "not_modified", wait_for_commit)
            digest = body_hash(result.body)
            if feed.initialized and digest == feed.body_hash:
                return await self._record_success(feed, result, None, digest, now, "unchanged", wait_for_commit)
            parsed = await parse_feed_in_worker(
                result.body, url=result.final_url, content_type=result.content_type, now=now
            )
        except FeedError as error:
            return await self._record_failure(feed, error.message, error, now)
        except Exception:  # recorded as this feed's failure; the traceback is logged
            log.exception("unexpected error while polling feed %d (%s)", feed.id, feed.url)
            return await self._record_failure(feed, INTERNAL_ERROR, None, now)
        return await self._record_success(feed, result, parsed, digest, now, "changed", True)

    async def _record_success(self, feed: Feed, result: FetchResult, parsed: ParsedFeed | None,
                              digest: str | None, now: datetime, status: PollStatus,
                              wait_for_commit: bool) -> PollOutcome:
        interval = await self.interval_for(feed.id, now)
        policy = announce_policy(feed)
        hub = first_hub(result, parsed)
        topic = result.self_url or (parsed.self_url if parsed is not None else None) or result.final_url
        new_token, new_secret = secrets.token_urlsafe(32), secrets.token_hex(32)

        moved_to = None if result.moved_to is None else canonicalize_url(result.moved_to)
        dropped = await filtered_out(self.database, feed.id, parsed)

        def op(connection: Connection) -> tuple[post_store.StoreResult, str, str]:
            url = feed.url
            moved = "unchanged"
            if moved_to is not None:
                moved = feed_store.move_feed_sync(connection, feed.id, moved_to)
                if moved == "moved":
                    url = moved_to
            stored = post_store.StoreResult()
            if parsed is not None:
                stored = post_store.store_entries_sync(
                    connection, guild_id=feed.guild_id, feed_id=feed.id, channel_id=feed.channel_id,
                    feed_title=parsed.title, entries=parsed.entries, policy=policy, now=now,
                    filtered_out=dropped,
                )
            feed_store.record_success_sync(
                connection, feed.id, now=now, next_poll_at=next_slot(url, now, interval),
                etag=result.etag, last_modified=result.last_modified, body_hash=digest,
                title=parsed.title if parsed is not None else None, initialized=parsed is not None,
            )
            if parsed is not None:  # what the document (and the response's Link header) say of a hub
                websub_store.note_hub_sync(connection, feed.id, hub_url=hub, topic_url=topic, now=now,
                                           token=new_token, secret=new_secret)
            if moved == "taken":
                assert result.moved_to is not None
                feed_store.record_failure_sync(
                    connection, feed.id, now=now, error=f"moved to {result.moved_to}",
                    failures=0, next_poll_at=next_slot(url, now, interval),
                    disabled_reason=f"it moved permanently to {result.moved_to}, which this server already follows",
                )
            return stored, moved, url

        if not wait_for_commit and parsed is None and result.moved_to is None:
            await self.database.enqueue(op)
            return PollOutcome(feed.id, status, next_poll_at=next_slot(feed.url, now, interval))
        stored, moved, url = await self.database.write(op)
        if stored.queued and self.on_posts_stored is not None:
            self.on_posts_stored()
        return PollOutcome(
            feed.id, status,
            new_posts=stored.new_posts, queued=stored.queued, updated_posts=stored.updated,
            moved_to=result.moved_to if moved != "unchanged" else None,
            next_poll_at=next_slot(url, now, interval),
        )

    async def interval_for(self, feed_id: int, now: datetime) -> int:
        """The poll interval of a feed: the slow fallback pace while its push subscription is live
        (and pushes can arrive: without PUBLIC_URL and the web server none do)."""
        if not self.settings.websub_enabled:
            return self.interval
        subscription = await websub_store.for_feed(self.database, feed_id)
        if subscription is not None and subscription.live_at(now):
            return max(self.interval, self.settings.tuning.websub_fallback_poll_seconds)
        return self.interval

    async def _record_failure(self, feed: Feed, message: str, error: FeedError | None,
                              now: datetime) -> PollOutcome:
        interval = self.interval
        retry_after = error.retry_after_seconds if isinstance(error, FeedRetryLater) else None

        def op(connection: Connection) -> tuple[int, datetime, str | None]:
            current = feed_store.load_feed_sync(connection, feed.id)
            failures = (current.consecutive_failures if current else feed.consecutive_failures) + 1
            delay = backoff_seconds(interval, failures)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
            next_poll = now + timedelta(seconds=delay)
            reason = None
            if failures >= MAX_CONSECUTIVE_FAILURES and (current is None or current.disabled_reason is None):
                reason = f"{failures} polls in a row failed; the last error: {message}"
            feed_store.record_failure_sync(
                connection, feed.id, now=now, error=message, failures=failures, next_poll_at=next_poll,
                disabled_reason=reason,
            )
            return failures, next_poll, reason

        failures, next_poll, reason = await self.database.write(op)
        log.info("feed %d (%s) failed (%d in a row): %s", feed.id, feed.url, failures, message)
        return PollOutcome(feed.id, "disabled" if reason else "failed", error=message, next_poll_at=next_poll)
