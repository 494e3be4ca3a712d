"""All SQL of the ``feeds`` table: registering, listing, pausing, poll bookkeeping and the notices
(feed disabled, feed moved) the admins must be told about once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.model.posts import ChannelKind
from bot.storage import websub as websub_store
from bot.storage.db import Database, from_db_time, to_db_time, utcnow
from bot.storage.sql import Connection, Row

NoticeKind = Literal["disabled", "moved"]

_FEED_COLUMNS = (
    "id, guild_id, url, channel_id, channel_kind, title, ping_role_id, backfill, etag, last_modified, "
    "body_hash, initialized, consecutive_failures, last_error, last_polled_at, last_success_at, "
    "next_poll_at, paused, disabled_reason, disabled_notified, moved_from_url, created_at"
)


@dataclass(frozen=True, slots=True)
class Feed:
    id: int
    guild_id: int
    url: str
    channel_id: int
    channel_kind: ChannelKind
    title: str | None
    ping_role_id: int | None
    backfill: int
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    initialized: bool
    consecutive_failures: int
    last_error: str | None
    last_polled_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    paused: bool
    disabled_reason: str | None
    disabled_notified: bool
    moved_from_url: str | None
    created_at: datetime

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A feed plus what ``/feed list`` shows about it."""

    feed: Feed
    posts_announced: int

    @property
    def id(self) -> int:
        return self.feed.id

    @property
    def url(self) -> str:
        return self.feed.url

    @property
    def last_success_at(self) -> datetime | None:
        return self.feed.last_success_at

    @property
    def consecutive_failures(self) -> int:
        return self.feed.consecutive_failures

    @property
    def last_error(self) -> str | None:
        return self.feed.last_error

    @property
    def disabled_reason(self) -> str | None:
        return self.feed.disabled_reason

    @property
    def next_poll_at(self) -> datetime | None:
        return self.feed.next_poll_at


@dataclass(frozen=True, slots=True)
class FeedNotice:
    """Something the admins must be told once, in the feed's channel (plain text, no mentions)."""

    feed_id: int
    guild_id: int
    channel_id: int
    kind: NoticeKind
    message: str
    moved_from_url: str | None = None


def _time(value: object) -> datetime | None:
    return from_db_time(value) if isinstance(value, str) else None


def feed_from_row(row: Row) -> Feed:
    created = from_db_time(row["created_at"])
    assert created is not None
    return Feed(
        id=row["id"], guild_id=row["guild_id"], url=row["url"], channel_id=row["channel_id"],
        channel_kind=row["channel_kind"], title=row["title"], ping_role_id=row["ping_role_id"],
        backfill=row["backfill"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], initialized=bool(row["initialized"]),
        consecutive_failures=row["consecutive_failures"], last_error=row["last_error"],
        last_polled_at=_time(row["last_polled_at"]), last_success_at=_time(row["last_success_at"]),
        next_poll_at=_time(row["next_poll_at"]), paused=bool(row["paused"]),
        disabled_reason=row["disabled_reason"], disabled_notified=bool(row["disabled_notified"]),
        moved_from_url=row["moved_from_url"], created_at=created,
    )


async def register_feed(database: Database, *, guild_id: int, url: str, channel_id: int,
                        channel_kind: ChannelKind = "text", backfill: int = 1, ping_role_id: int | None = None,
                        now: datetime | None = None) -> Feed:
    """Add a feed (due for polling at once), or return the one already registered for (guild, url)
    unchanged. ``url`` is the stored form the feed code made (one form per feed, so registering
    twice is idempotent)."""
    created = to_db_time(now or utcnow())

    def op(connection: Connection) -> Feed:
        connection.execute(
            "INSERT INTO feeds (guild_id, url, channel_id, channel_kind, backfill, ping_role_id, next_poll_at, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, url) DO NOTHING",
            (guild_id, url, channel_id, channel_kind, max(0, backfill), ping_role_id, created, created),
        )
        row = connection.execute(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE guild_id = ? AND url = ?", (guild_id, url)
        ).fetchone()
        return feed_from_row(row)

    return await database.write(op)


async def get_feed(database: Database, feed_id: int) -> Feed | None:
    row = await database.fetch_one(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id = ?", (feed_id,))
    return None if row is None else feed_from_row(row)


async def find_feed(database: Database, guild_id: int, url: str) -> Feed | None:
    """The guild's feed stored at ``url`` (the stored form)."""
    row = await database.fetch_one(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE guild_id = ? AND url = ?",
                                   (guild_id, url))
    return None if row is None else feed_from_row(row)


async def remove_feed(database: Database, *, guild_id: int, feed_id: int) -> bool:
    """Delete a guild's feed (its posts stay, with ``feed_id`` cleared). False if there was none.
    Its WebSub subscription, if any, is left to be unsubscribed."""
    when = utcnow()

    def op(connection: Connection) -> bool:
        exists = connection.execute("SELECT 1 FROM feeds WHERE id = ? AND guild_id = ?", (feed_id, guild_id))
        if exists.fetchone() is not None:
            websub_store.retire_feed_sync(connection, feed_id, when)
        cursor = connection.execute("DELETE FROM feeds WHERE id = ? AND guild_id = ?", (feed_id, guild_id))
        return cursor.rowcount > 0

    return await database.write(op)


async def list_feeds(database: Database, guild_id: int) -> list[FeedStatus]:
    rows = await database.fetch_all(
        f"SELECT {', '.join('f.' + c.strip() for c in _FEED_COLUMNS.split(','))}, "
        "(SELECT COUNT(*) FROM posts p JOIN announcements a ON a.post_id = p.id "
        " WHERE p.feed_id = f.id AND a.state IN ('sent', 'threaded')) AS announced "
        "FROM feeds f WHERE f.guild_id = ? ORDER BY f.id",
        (guild_id,),
    )
    return [FeedStatus(feed_from_row(row), int(row["announced"])) for row in rows]


async def set_paused(database: Database, feed_id: int, paused: bool, *, now: datetime | None = None) -> bool:
    """Pause or resume a feed; resuming makes it due at once. False if there is no such feed."""
    due = to_db_time(now or utcnow())

    def op(connection: Connection) -> bool:
        if paused:
            cursor = connection.execute("UPDATE feeds SET paused = 1 WHERE id = ?", (feed_id,))
        else:
            cursor = connection.execute(
                "UPDATE feeds SET paused = 0, next_poll_at = ? WHERE id = ?", (due, feed_id)
            )
        return cursor.rowcount > 0

    return await database.write(op)


async def enable_feed(database: Database, feed_id: int, *, now: datetime | None = None) -> bool:
    """Turn a disabled feed back on: failures forgotten, due at once."""
    due = to_db_time(now or utcnow())

    def op(connection: Connection) -> bool:
        cursor = connection.execute(
            "UPDATE feeds SET disabled_reason = NULL, disabled_notified = 0, consecutive_failures = 0, "
            "next_poll_at = ? WHERE id = ?",
            (due, feed_id),
        )
        return cursor.rowcount > 0

    return await database.write(op)


async def due_feed_ids(database: Database, now: datetime) -> list[int]:
    """Feeds to poll now: not paused, not disabled, next poll time reached (oldest due first)."""
    rows = await database.fetch_all(
        "SELECT id FROM feeds WHERE paused = 0 AND disabled_reason IS NULL "
        "AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at, id",
        (to_db_time(now),),
    )
    return [int(row["id"]) for row in rows]


async def pending_feed_notices(database: Database) -> list[FeedNotice]:
    """Feeds newly disabled, or moved by a permanent redirect, that the admins were not told about."""
    rows = await database.fetch_all(
        f"SELECT {_FEED_COLUMNS} FROM feeds WHERE (disabled_reason IS NOT NULL AND disabled_notified = 0) "
        "OR moved_from_url IS NOT NULL ORDER BY id"
    )
    notices: list[FeedNotice] = []
    for row in rows:
        feed = feed_from_row(row)
        if feed.moved_from_url is not None:
            notices.append(FeedNotice(
                feed.id, feed.guild_id, feed.channel_id, "moved",
                f"The feed {feed.moved_from_url} has moved permanently to {feed.url}; the bot now reads "
                "the new address (posts already announced will not be announced again).",
                feed.moved_from_url,
            ))
        if feed.disabled_reason is not None and not feed.disabled_notified:
            notices.append(FeedNotice(
                feed.id, feed.guild_id, feed.channel_id, "disabled",
                f"The feed {feed.url} is turned off: {feed.disabled_reason}. Fix the problem, then turn the "
                "feed back on with the feed commands.",
            ))
    return notices


async def mark_feed_notice_sent(database: Database, notice: FeedNotice) -> None:
    def op(connection: Connection) -> None:
        if notice.kind == "disabled":
            connection.execute("UPDATE feeds SET disabled_notified = 1 WHERE id = ?", (notice.feed_id,))
        else:
            connection.execute(
                "UPDATE feeds SET moved_from_url = NULL WHERE id = ? AND moved_from_url = ?",
                (notice.feed_id, notice.moved_from_url),
            )

    await database.write(op)


# -- poll bookkeeping (sync: called inside the scheduler's write operations) ---------------------------


def load_feed_sync(connection: Connection, feed_id: int) -> Feed | None:
    row = connection.execute(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id = ?", (feed_id,)).fetchone()
    return None if row is None else feed_from_row(row)


def record_success_sync(connection: Connection, feed_id: int, *, now: datetime, next_poll_at: datetime,
                        etag: str | None, last_modified: str | None, body_hash: str | None,
                        title: str | None, initialized: bool) -> None:
    connection.execute(
        "UPDATE feeds SET etag = ?, last_modified = ?, body_hash = COALESCE(?, body_hash), "
        "title = COALESCE(?, title), initialized = CASE WHEN ? = 1 THEN 1 ELSE initialized END, consecutive_failures = 0, "
        "last_error = NULL, last_polled_at = ?, last_success_at = ?, next_poll_at = ? WHERE id = ?",
        (etag, last_modified, body_hash, title, int(initialized), to_db_time(now), to_db_time(now),
         to_db_time(next_poll_at), feed_id),
    )


def record_failure_sync(connection: Connection, feed_id: int, *, now: datetime, error: str,
                        failures: int, next_poll_at: datetime, disabled_reason: str | None) -> None:
    connection.execute(
        "UPDATE feeds SET consecutive_failures = ?, last_error = ?, last_polled_at = ?, next_poll_at = ?, "
        "disabled_reason = COALESCE(?, disabled_reason), "
        "disabled_notified = CASE WHEN ? IS NOT NULL THEN 0 ELSE disabled_notified END WHERE id = ?",
        (failures, error, to_db_time(now), to_db_time(next_poll_at), disabled_reason, disabled_reason, feed_id),
    )


MoveResult = Literal["moved", "unchanged", "taken"]


def move_feed_sync(connection: Connection, feed_id: int, new_url: str) -> MoveResult:
    """Point a feed at the address it permanently moved to (``moved``, ``new_url`` in its stored
    form); ``taken`` when the guild already has a feed at that address (nothing changed)."""
    feed = load_feed_sync(connection, feed_id)
    if feed is None or feed.url == new_url:
        return "unchanged"
    clash = connection.execute(
        "SELECT 1 FROM feeds WHERE guild_id = ? AND url = ? AND id != ?", (feed.guild_id, new_url, feed_id)
    ).fetchone()
    if clash is not None:
        return "taken"
    connection.execute(
        "UPDATE feeds SET url = ?, moved_from_url = COALESCE(moved_from_url, ?), etag = NULL, "
        "last_modified = NULL WHERE id = ?",
        (new_url, feed.url, feed_id),
    )
    return "moved"
