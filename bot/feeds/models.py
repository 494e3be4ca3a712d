"""The plain data the feed code hands around (frozen dataclasses, no discord import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.model.posts import Entry

FeedKind = Literal["rss", "atom", "json"]


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a feed document contained. ``entries`` are newest first; ``problem`` is the parser's
    complaint about a partly broken document that still yielded items; ``skipped`` counts items
    dropped because they had no usable link."""

    kind: FeedKind
    title: str
    home_url: str | None
    entries: tuple[Entry, ...]
    problem: str | None = None
    skipped: int = 0
    # WebSub: the hubs the document advertises (``<link rel="hub">``, JSON Feed ``hubs``) and the
    # URL it names as its own (``rel="self"``, ``feed_url``).
    hub_urls: tuple[str, ...] = ()
    self_url: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A successful HTTP exchange: 200 with a body, or 304 (``not_modified``).

    ``final_url`` is where the document came from after redirects; ``moved_to`` is set when the
    requested URL answered with a permanent redirect (301/308), i.e. the stored URL should change.
    """

    url: str
    final_url: str
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    moved_to: str | None = None
    redirects: tuple[str, ...] = ()
    # WebSub discovery from the response's ``Link`` header: ``rel="hub"`` and ``rel="self"``.
    hub_urls: tuple[str, ...] = ()
    self_url: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class FeedPreview:
    """One fetch and parse, nothing stored: what ``/feed add`` and ``/feed test`` show."""

    url: str
    final_url: str
    moved_to: str | None
    kind: FeedKind
    title: str
    item_count: int
    newest: tuple[Entry, ...]
    problem: str | None = None


PollStatus = Literal["changed", "unchanged", "not_modified", "failed", "disabled", "skipped"]


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of one feed did."""

    feed_id: int
    status: PollStatus
    new_posts: int = 0
    queued: int = 0
    updated_posts: int = 0
    error: str | None = None
    moved_to: str | None = None
    next_poll_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PollReport:
    """One ``run_due`` pass over every due feed."""

    started_at: datetime
    seconds: float
    outcomes: tuple[PollOutcome, ...] = field(default_factory=tuple)

    @property
    def polled(self) -> int:
        return len(self.outcomes)

    @property
    def failed(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status in ("failed", "disabled"))

    @property
    def changed(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == "changed")

    @property
    def new_posts(self) -> int:
        return sum(outcome.new_posts for outcome in self.outcomes)

    @property
    def queued(self) -> int:
        return sum(outcome.queued for outcome in self.outcomes)
