"""Posts as the feed code finds them, as storage keeps them and as announcements show them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# Where a feed's posts are announced: a text channel, an announcement (news) channel or a forum.
ChannelKind = Literal["text", "news", "forum"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed item, normalised.

    ``identity`` is what the feed calls the item (see ``bot.feeds.identity``); ``link`` is the
    canonical URL that makes a post unique in a guild. ``published`` is the item's date in UTC, or
    the time it was first seen when the feed gives none (``date_known`` says which).
    """

    identity: str
    link: str
    guid: str | None
    title: str
    author: str | None
    summary: str
    published: datetime
    updated: datetime | None
    date_known: bool
    image_url: str | None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PostContent:
    """What an announcement shows of a post (the ``posts`` row, as stored by the feed code)."""

    title: str
    canonical_url: str
    author: str | None
    summary: str
    published_at: datetime
    image_url: str | None
    categories: tuple[str, ...]
    feed_title: str | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """An announcement waiting for its turn (``queued``) or interrupted (``pending``/``sent``)."""

    announcement_id: int
    guild_id: int
    channel_id: int
    state: str
    published_at: datetime


def parse_categories(raw: str | None) -> tuple[str, ...]:
    """The ``posts.categories`` JSON array; anything else (corrupt, not a list) means none."""
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value if isinstance(item, str | int | float) and str(item).strip())
