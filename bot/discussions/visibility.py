"""Which discussions may be served on the blog: those in channels that @everyone can view.

The cogs tell this service what Discord shows (at start, and when a channel's or the @everyone
role's permissions change); the web side reads it through bot.storage.blog's public filters.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.storage import visibility as store
from bot.storage.db import Database


async def channels_seen(database: Database, guild_id: int, public_by_channel: Mapping[int, bool]) -> None:
    """Record whether @everyone can view each of these channels (unchanged values are not rewritten,
    so no discussion's cached page is dropped for nothing)."""
    await store.record_channel_visibility(database, guild_id, public_by_channel)


async def channels_to_watch(database: Database) -> dict[int, set[int]]:
    """Per guild, the channels that hold (or held) discussion threads or receive announcements."""
    return await store.discussion_channel_ids(database)
