"""The followed feeds as the admin commands and FEED_URLS change them. Every feed URL is stored in
its canonical form (:func:`bot.feeds.urls.canonicalize_url`), so registering twice is idempotent
and a feed is found whichever way its address is typed."""

from __future__ import annotations

import asyncio

from bot.feeds.filters import FeedFilter, FilterError
from bot.feeds.urls import canonicalize_url
from bot.model.posts import ChannelKind
from bot.storage import feeds as feed_store
from bot.storage import filters as filter_store
from bot.storage.db import Database
from bot.storage.feeds import Feed, FeedNotice
from bot.storage.filters import RecentPost, StoredFilter


async def register_feed(database: Database, *, guild_id: int, url: str, channel_id: int,
                        channel_kind: ChannelKind = "text", backfill: int = 1,
                        ping_role_id: int | None = None) -> Feed:
    """Add a feed (due for polling at once), or return the one already registered for (guild, url)
    unchanged. Used for FEED_URLS at start-up and by ``/feed add``."""
    return await feed_store.register_feed(
        database, guild_id=guild_id, url=canonicalize_url(url), channel_id=channel_id,
        channel_kind=channel_kind, backfill=backfill, ping_role_id=ping_role_id)


async def find_feed(database: Database, guild_id: int, url: str) -> Feed | None:
    return await feed_store.find_feed(database, guild_id, canonicalize_url(url))


async def remove_feed(database: Database, *, guild_id: int, feed_id: int) -> bool:
    """Stop following a feed; its posts and their discussions stay."""
    return await feed_store.remove_feed(database, guild_id=guild_id, feed_id=feed_id)


async def pause_feed(database: Database, feed_id: int) -> None:
    await feed_store.set_paused(database, feed_id, True)


async def resume_feed(database: Database, feed: Feed) -> bool:
    """Poll the feed again from the next cycle; a feed disabled after repeated failures gets its
    failure count reset. Returns whether it had been disabled."""
    await feed_store.set_paused(database, feed.id, False)
    if feed.disabled_reason is None:
        return False
    await feed_store.enable_feed(database, feed.id)
    return True


async def mark_notice_sent(database: Database, notice: FeedNotice) -> None:
    """The admins were told (or cannot be): the notice is not posted again."""
    await feed_store.mark_feed_notice_sent(database, notice)


async def set_filter(database: Database, feed_id: int, include: str | None, exclude: str | None) -> FeedFilter:
    """Check and save a feed's filter (both rules empty: no filter); raises :class:`FilterError`."""
    checked = FeedFilter.parse(include, exclude)
    await filter_store.save_filter(database, feed_id, checked.include.text if checked.include else None,
                                   checked.exclude.text if checked.exclude else None)
    return checked


async def guild_filters(database: Database, guild_id: int) -> dict[int, str]:
    """Each filtered feed of the guild with its filter as ``/feed list`` shows it."""
    return {feed_id: _describe(stored) for feed_id, stored in
            (await filter_store.filters_of_guild(database, guild_id)).items()}


async def try_filter(database: Database, feed_id: int, limit: int = 10) -> tuple[str, list[tuple[RecentPost, bool]]]:
    """The feed's filter and, for its ``limit`` newest stored posts, whether the filter keeps each."""
    stored = await filter_store.get_filter(database, feed_id)
    posts = await filter_store.recent_posts(database, feed_id, limit)
    if stored is None:
        return "none", [(post, True) for post in posts]
    try:
        feed_filter = FeedFilter.parse(stored.include, stored.exclude)
    except FilterError as error:  # saved under older rules: polls do not use it either
        return f"{_describe(stored)} (not used: {error})", [(post, True) for post in posts]

    def decide() -> list[tuple[RecentPost, bool]]:  # in a thread: regex matching never runs on the loop
        return [(post, feed_filter.keeps(post.title, post.categories, post.summary)) for post in posts]

    return feed_filter.describe(), await asyncio.to_thread(decide)


def _describe(stored: StoredFilter) -> str:
    parts = ([f"include {stored.include}"] if stored.include else []) + (
        [f"exclude {stored.exclude}"] if stored.exclude else [])
    return "; ".join(parts) or "none"
