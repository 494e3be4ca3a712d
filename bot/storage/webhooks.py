"""The webhook outbox (filled by triggers, migration 0006) and each configured URL's delivery cursor.

Per URL, events go out in outbox order, one at a time: ``delivered_up_to`` is the last event done
with. Events every URL is done with are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.storage.db import Database, WriteOp, from_db_time, to_db_time
from bot.storage.sql import Connection, on_postgresql


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    type: str  # comment.created, comment.edited, comment.deleted, post.thread_created
    post_id: int
    message_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    delivered_up_to: int
    failures: int
    first_failed_at: datetime | None
    next_attempt_at: datetime | None


# The last id handed out, even when that event is gone from the outbox already.
_NEWEST_OUTBOX_ID = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'webhook_outbox'), 0)"
_NEWEST_OUTBOX_ID_POSTGRESQL = (
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM webhook_outbox_id_seq")


def sync_targets(urls: Sequence[str]) -> WriteOp[None]:
    """Make the targets the configured URLs: a new one starts after the newest event (no replay of
    history), a removed one is forgotten; with none left the outbox is emptied (and stays empty:
    the triggers record events only while some target exists)."""

    def op(connection: Connection) -> None:
        newest = int(connection.execute(_NEWEST_OUTBOX_ID_POSTGRESQL if on_postgresql(connection)
                                        else _NEWEST_OUTBOX_ID).fetchone()[0])
        if urls:
            marks = ",".join("?" * len(urls))
            connection.execute(f"DELETE FROM webhook_targets WHERE url NOT IN ({marks})", tuple(urls))
        else:
            connection.execute("DELETE FROM webhook_targets")
        for url in urls:
            connection.execute("INSERT INTO webhook_targets (url, delivered_up_to) VALUES (?, ?) "
                               "ON CONFLICT (url) DO NOTHING", (url, newest))
        _prune(connection)

    return op


def _prune(connection: Connection) -> None:
    connection.execute("DELETE FROM webhook_outbox WHERE id <= coalesce("
                       "(SELECT min(delivered_up_to) FROM webhook_targets), (SELECT max(id) FROM webhook_outbox))")


async def target(database: Database, url: str) -> WebhookTarget | None:
    row = await database.fetch_one("SELECT * FROM webhook_targets WHERE url = ?", (url,))
    if row is None:
        return None
    return WebhookTarget(url=str(row["url"]), delivered_up_to=int(row["delivered_up_to"]),
                         failures=int(row["failures"]), first_failed_at=from_db_time(row["first_failed_at"]),
                         next_attempt_at=from_db_time(row["next_attempt_at"]))


async def next_event(database: Database, after_id: int) -> OutboxEvent | None:
    row = await database.fetch_one(
        "SELECT id, type, post_id, message_id, created_at FROM webhook_outbox WHERE id > ? ORDER BY id LIMIT 1",
        (after_id,))
    if row is None:
        return None
    created = datetime.fromisoformat(str(row["created_at"]))
    return OutboxEvent(id=int(row["id"]), type=str(row["type"]), post_id=int(row["post_id"]),
                       message_id=None if row["message_id"] is None else int(row["message_id"]),
                       created_at=created)


def mark_done(url: str, event_id: int) -> WriteOp[None]:
    """The event was delivered (or skipped, or given up): on to the next; prune what all are done with."""

    def op(connection: Connection) -> None:
        connection.execute(
            "UPDATE webhook_targets SET delivered_up_to = CASE WHEN delivered_up_to > ? THEN delivered_up_to ELSE ? END, "
            "failures = 0, first_failed_at = NULL, next_attempt_at = NULL, last_error = NULL WHERE url = ?",
            (event_id, event_id, url))
        _prune(connection)

    return op


def mark_failed(url: str, first_failed_at: datetime, next_attempt_at: datetime, error: str) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        connection.execute(
            "UPDATE webhook_targets SET failures = failures + 1, first_failed_at = coalesce(first_failed_at, ?), "
            "next_attempt_at = ?, last_error = ? WHERE url = ?",
            (to_db_time(first_failed_at), to_db_time(next_attempt_at), error[:300], url))

    return op


async def failing_count(database: Database, urls: Sequence[str], *, min_failures: int) -> int:
    """How many of ``urls`` have failed at least ``min_failures`` times in a row."""
    if not urls:
        return 0
    marks = ",".join("?" * len(urls))
    value = await database.fetch_value(
        f"SELECT count(*) FROM webhook_targets WHERE failures >= ? AND url IN ({marks})", (min_failures, *urls))
    return int(value or 0)
