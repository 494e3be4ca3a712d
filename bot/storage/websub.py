"""All SQL of the ``websub_subscriptions`` table: a feed's hub subscription from discovery through
verification, renewal and failure to the unsubscription after the feed is removed.

States: ``wanted`` (a hub was found, the bot has not asked yet), ``pending`` (asked, waiting for
the hub's verification), ``live`` (verified; ``expires_at`` is the end of the lease; a renewal
keeps it live while it waits for its own verification), ``failed`` (``last_error`` says why; asked
again at ``next_action_at``), ``unsubscribing`` (the feed was removed). ``requested_mode`` is what
the bot asked and the hub has not verified yet: the callback confirms only that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bot.storage.db import Database, from_db_time, to_db_time
from bot.storage.sql import Connection, Row

State = Literal["wanted", "pending", "live", "failed", "unsubscribing"]
Mode = Literal["subscribe", "unsubscribe"]

_COLUMNS = ("id, feed_id, token, hub_url, topic_url, secret, state, requested_mode, requested_at, lease_seconds, "
            "expires_at, next_action_at, attempts, last_error, last_push_at, created_at")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    feed_id: int | None
    token: str
    hub_url: str
    topic_url: str
    secret: str
    state: State
    requested_mode: Mode | None
    requested_at: datetime | None
    lease_seconds: int | None
    expires_at: datetime | None
    next_action_at: datetime | None
    attempts: int
    last_error: str | None
    last_push_at: datetime | None

    def live_at(self, now: datetime) -> bool:
        return self.state == "live" and self.expires_at is not None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verification the bot accepted did."""

    subscription: Subscription
    mode: Mode
    expires_at: datetime | None


def _row(row: Row) -> Subscription:
    return Subscription(
        id=row["id"], feed_id=row["feed_id"], token=row["token"], hub_url=row["hub_url"],
        topic_url=row["topic_url"], secret=row["secret"], state=row["state"], requested_mode=row["requested_mode"],
        requested_at=from_db_time(row["requested_at"]), lease_seconds=row["lease_seconds"],
        expires_at=from_db_time(row["expires_at"]), next_action_at=from_db_time(row["next_action_at"]),
        attempts=row["attempts"], last_error=row["last_error"], last_push_at=from_db_time(row["last_push_at"]),
    )


async def for_feed(database: Database, feed_id: int) -> Subscription | None:
    row = await database.fetch_one(f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE feed_id = ?", (feed_id,))
    return None if row is None else _row(row)


async def by_token(database: Database, token: str) -> Subscription | None:
    row = await database.fetch_one(f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE token = ?", (token,))
    return None if row is None else _row(row)


async def for_guild(database: Database, guild_id: int) -> dict[int, Subscription]:
    """The subscriptions of a guild's feeds, by feed id."""
    rows = await database.fetch_all(
        f"SELECT {', '.join('s.' + c.strip() for c in _COLUMNS.split(','))} FROM websub_subscriptions s "
        "JOIN feeds f ON f.id = s.feed_id WHERE f.guild_id = ?", (guild_id,))
    return {int(row["feed_id"]): _row(row) for row in rows}


async def due(database: Database, now: datetime, limit: int = 50) -> list[Subscription]:
    """Subscriptions the bot has something to do for (ask, renew, retry, give up waiting)."""
    rows = await database.fetch_all(
        f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE next_action_at IS NOT NULL AND next_action_at <= ? "
        "ORDER BY next_action_at, id LIMIT ?", (to_db_time(now), limit))
    return [_row(row) for row in rows]


def live_sync(connection: Connection, feed_id: int, now: datetime) -> bool:
    row = connection.execute(
        "SELECT 1 FROM websub_subscriptions WHERE feed_id = ? AND state = 'live' AND expires_at > ?",
        (feed_id, to_db_time(now))).fetchone()
    return row is not None


def note_hub_sync(connection: Connection, feed_id: int, *, hub_url: str | None, topic_url: str,
                  now: datetime, token: str, secret: str) -> bool:
    """What a parsed poll says about the feed's hub. A new hub (or topic) replaces the subscription:
    the old one is unsubscribed. ``token`` and ``secret`` are used for a new one. True when a new
    subscription is wanted."""
    row = connection.execute(f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE feed_id = ?",
                             (feed_id,)).fetchone()
    current = None if row is None else _row(row)
    if current is not None and current.hub_url == hub_url and current.topic_url == topic_url:
        return False
    if current is not None:
        retire_feed_sync(connection, feed_id, now)
    if hub_url is None:
        return False
    connection.execute(
        "INSERT INTO websub_subscriptions (feed_id, token, hub_url, topic_url, secret, state, next_action_at, "
        "created_at) VALUES (?, ?, ?, ?, ?, 'wanted', ?, ?)",
        (feed_id, token, hub_url, topic_url, secret, to_db_time(now), to_db_time(now)))
    return True


def retire_feed_sync(connection: Connection, feed_id: int, now: datetime) -> None:
    """The feed is removed (or its hub changed): a subscription the hub may hold is unsubscribed;
    one the bot never asked for is forgotten."""
    connection.execute("DELETE FROM websub_subscriptions WHERE feed_id = ? AND state = 'wanted'", (feed_id,))
    connection.execute(
        "UPDATE websub_subscriptions SET feed_id = NULL, state = 'unsubscribing', requested_mode = NULL, "
        "attempts = 0, last_error = NULL, next_action_at = ? WHERE feed_id = ?", (to_db_time(now), feed_id))


async def mark_requested(database: Database, subscription_id: int, mode: Mode, *, now: datetime,
                         lease_seconds: int, verify_by: datetime) -> None:
    """Written before the request goes out: a hub may verify before it even answers the POST."""

    def op(connection: Connection) -> None:
        connection.execute(
            "UPDATE websub_subscriptions SET requested_mode = ?, requested_at = ?, lease_seconds = ?, "
            "next_action_at = ?, state = CASE WHEN ? = 'subscribe' AND state IN ('wanted', 'failed') "
            "THEN 'pending' ELSE state END WHERE id = ?",
            (mode, to_db_time(now), lease_seconds, to_db_time(verify_by), mode, subscription_id))

    await database.write(op)


async def record_failure(database: Database, subscription_id: int, error: str, *, now: datetime,
                         retry_at: datetime) -> Subscription | None:
    """A request failed (refused, unreachable, never verified). A live subscription whose lease has
    not ended stays live (the renewal is tried again); otherwise it is ``failed`` and its feed is
    polled at once at the normal pace again."""

    def op(connection: Connection) -> Subscription | None:
        connection.execute(
            "UPDATE websub_subscriptions SET attempts = attempts + 1, last_error = ?, requested_mode = NULL, "
            "next_action_at = ?, state = CASE WHEN state = 'unsubscribing' THEN state "
            "WHEN state = 'live' AND expires_at > ? THEN 'live' ELSE 'failed' END WHERE id = ?",
            (error, to_db_time(retry_at), to_db_time(now), subscription_id))
        row = connection.execute(f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE id = ?",
                                 (subscription_id,)).fetchone()
        found = None if row is None else _row(row)
        if found is not None and found.state == "failed" and found.feed_id is not None:
            _poll_now_sync(connection, found.feed_id, now)
        return found

    return await database.write(op)


async def lapse(database: Database, subscription_id: int, *, now: datetime, reason: str) -> None:
    """The lease ended without a renewal verified: push is off until a new subscription is."""

    def op(connection: Connection) -> None:
        cursor = connection.execute(
            "UPDATE websub_subscriptions SET state = 'failed', last_error = ?, requested_mode = NULL, "
            "next_action_at = ? WHERE id = ? AND state = 'live' AND expires_at <= ? RETURNING feed_id",
            (reason, to_db_time(now), subscription_id, to_db_time(now)))
        row = cursor.fetchone()
        if row is not None and row[0] is not None:
            _poll_now_sync(connection, int(row[0]), now)

    await database.write(op)


def _poll_now_sync(connection: Connection, feed_id: int, now: datetime) -> None:
    # The feed may be scheduled hours away (the slow pace while push was live).
    connection.execute("UPDATE feeds SET next_poll_at = CASE WHEN next_poll_at < ? THEN next_poll_at ELSE ? END WHERE id = ?",
                       (to_db_time(now), to_db_time(now), feed_id))


async def verify(database: Database, token: str, *, mode: Mode, topic_url: str, lease_seconds: int | None,
                 now: datetime, renew_after: float) -> Verified | None:
    """The hub's verification of what the bot asked: accepted (and recorded) only for the request
    awaiting it, with the subscription's topic. ``renew_after`` is the part of the lease after which
    the bot renews (0.85: at 85 %)."""

    def op(connection: Connection) -> Verified | None:
        row = connection.execute(f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE token = ?",
                                 (token,)).fetchone()
        found = None if row is None else _row(row)
        if found is None or found.requested_mode != mode or found.topic_url != topic_url:
            return None
        if mode == "unsubscribe":
            connection.execute("DELETE FROM websub_subscriptions WHERE id = ?", (found.id,))
            return Verified(found, mode, None)
        lease = lease_seconds if lease_seconds is not None and lease_seconds > 0 else found.lease_seconds or 0
        expires = now + timedelta(seconds=lease)
        renew = now + timedelta(seconds=lease * renew_after)
        connection.execute(
            "UPDATE websub_subscriptions SET state = 'live', requested_mode = NULL, lease_seconds = ?, "
            "expires_at = ?, next_action_at = ?, attempts = 0, last_error = NULL WHERE id = ?",
            (lease, to_db_time(expires), to_db_time(renew), found.id))
        return Verified(found, mode, expires)

    return await database.write(op)


async def deny(database: Database, token: str, *, topic_url: str, reason: str, now: datetime,
               retry_at: datetime) -> bool:
    """The hub refused the subscription (``hub.mode=denied``)."""

    def op(connection: Connection) -> bool:
        cursor = connection.execute(
            "UPDATE websub_subscriptions SET state = 'failed', requested_mode = NULL, last_error = ?, "
            "attempts = attempts + 1, next_action_at = ? WHERE token = ? AND topic_url = ? "
            "AND state != 'unsubscribing' RETURNING feed_id", (reason, to_db_time(retry_at), token, topic_url))
        row = cursor.fetchone()
        if row is not None and row[0] is not None:
            _poll_now_sync(connection, int(row[0]), now)
        return row is not None

    return await database.write(op)


async def record_push(database: Database, subscription_id: int, now: datetime) -> None:
    def op(connection: Connection) -> None:
        connection.execute("UPDATE websub_subscriptions SET last_push_at = ? WHERE id = ?",
                           (to_db_time(now), subscription_id))

    await database.write(op)


async def forget(database: Database, subscription_id: int) -> None:
    def op(connection: Connection) -> None:
        connection.execute("DELETE FROM websub_subscriptions WHERE id = ?", (subscription_id,))

    await database.write(op)
