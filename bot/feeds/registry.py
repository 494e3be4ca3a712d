"""The followed feeds as the admin commands and FEED_URLS change them. Every feed URL is stored in
its canonical form (:func:`bot.feeds.urls.canonicalize_url`), so registering twice is idempotent
and a feed is found whichever way its address is typed."""

from __future__ import annotations

from bot.feeds.urls import canonicalize_url
from bot.model.posts import ChannelKind
from bot.storage import feeds as feed_store
from bot.storage.db import Database
from bot.storage.feeds import Feed, FeedNotice


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
