"""SQL for announcements (and the ``threads`` rows they create).

States: ``queued`` (waiting for its turn) -> ``pending`` (written before every send attempt)
-> ``sent`` (message id stored) -> ``threaded`` (thread id stored, ``threads`` row inserted in the
same transaction); ``failed`` with a reason and error code; ``skipped`` (backfill, filtered, never
sent unless a member asks for the post's thread: :func:`request_thread` makes it ``queued``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.model.posts import Candidate, PostContent, parse_categories
from bot.storage.db import Database, from_db_time, to_db_time, utcnow
from bot.storage.sql import Connection, Row

# The most queued rows per channel looked at in one cycle (the per-cycle limit is at most 50).
MAX_PER_CHANNEL = 50


@dataclass(frozen=True, slots=True)
class AnnouncementWork:
    """One announcement with everything needed to send, resume or edit it."""

    id: int
    post_id: int
    guild_id: int
    channel_id: int
    state: str
    message_id: int | None
    thread_id: int | None
    attempts: int
    needs_edit: bool
    post: PostContent
    content_hash: str
    ping_role_id: int | None
    thread_name: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class FailedAnnouncement:
    id: int
    post_id: int
    guild_id: int
    channel_id: int
    title: str
    canonical_url: str
    error: str
    error_code: int | None
    attempts: int
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class GuildAnnounceSettings:
    """A guild's own values; None where it follows the process-wide setting."""

    announcements_per_cycle: int | None
    thread_auto_archive_minutes: int | None


_WORK_SELECT = """
SELECT a.id, a.post_id, a.guild_id, a.channel_id, a.state, a.message_id, a.thread_id, a.attempts,
       a.needs_edit, a.error, p.title, p.canonical_url, p.author, p.summary, p.published_at, p.image_url,
       p.categories, p.feed_title, p.content_hash, f.ping_role_id, t.name AS thread_name
FROM announcements AS a
JOIN posts AS p ON p.id = a.post_id
LEFT JOIN feeds AS f ON f.id = p.feed_id
LEFT JOIN threads AS t ON t.post_id = a.post_id
"""


def _work(row: Row) -> AnnouncementWork:
    published = from_db_time(row["published_at"])
    assert published is not None  # NOT NULL column
    post = PostContent(
        title=row["title"], canonical_url=row["canonical_url"], author=row["author"],
        summary=row["summary"] or "", published_at=published, image_url=row["image_url"],
        categories=parse_categories(row["categories"]), feed_title=row["feed_title"],
    )
    return AnnouncementWork(
        id=row["id"], post_id=row["post_id"], guild_id=row["guild_id"], channel_id=row["channel_id"],
        state=row["state"], message_id=row["message_id"], thread_id=row["thread_id"],
        attempts=row["attempts"], needs_edit=bool(row["needs_edit"]), post=post,
        content_hash=row["content_hash"] or "", ping_role_id=row["ping_role_id"],
        thread_name=row["thread_name"], last_error=row["error"],
    )


def _failed(row: Row) -> FailedAnnouncement:
    failed_at = from_db_time(row["updated_at"])
    assert failed_at is not None
    return FailedAnnouncement(
        id=row["id"], post_id=row["post_id"], guild_id=row["guild_id"], channel_id=row["channel_id"],
        title=row["title"], canonical_url=row["canonical_url"], error=row["error"] or "unknown error",
        error_code=row["error_code"], attempts=row["attempts"], failed_at=failed_at,
    )


# -- reads -----------------------------------------------------------------------------------------

async def cycle_candidates(database: Database, now: datetime | None = None) -> list[Candidate]:
    """Every interrupted (pending, sent) announcement and the oldest queued ones of each channel,
    except those waiting out their backoff until after ``now``."""
    rows = await database.fetch_all(
        """
        SELECT id, guild_id, channel_id, state, published_at FROM (
            SELECT a.id, a.guild_id, a.channel_id, a.state, p.published_at,
                   ROW_NUMBER() OVER (PARTITION BY a.channel_id, a.state = 'queued'
                                      ORDER BY p.published_at, a.id) AS place
            FROM announcements AS a JOIN posts AS p ON p.id = a.post_id
            WHERE a.state IN ('queued', 'pending', 'sent')
              AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= ?)
        ) AS ranked WHERE state != 'queued' OR place <= ?
        """,
        (to_db_time(now or utcnow()), MAX_PER_CHANNEL),
    )
    candidates = []
    for row in rows:
        published = from_db_time(row["published_at"])
        assert published is not None
        candidates.append(Candidate(row["id"], row["guild_id"], row["channel_id"], row["state"], published))
    return candidates


async def guilds_waiting_for_threads(database: Database, code: int) -> set[int]:
    """Guilds with an announcement whose thread Discord refused with ``code`` (the guild's active
    thread limit): their other announcements wait until it is created."""
    rows = await database.fetch_all(
        "SELECT DISTINCT guild_id FROM announcements WHERE state = 'sent' AND error_code = ?", (code,))
    return {int(row["guild_id"]) for row in rows}


@dataclass(frozen=True, slots=True)
class RecentSends:
    """A channel's announcements in the rate window: how many, and when the oldest of them began."""

    count: int
    oldest: datetime


async def recent_announcements(database: Database, since: datetime) -> dict[int, RecentSends]:
    """Per channel, the announcements that went out (or started to) since ``since``."""
    rows = await database.fetch_all(
        "SELECT channel_id, count(*) AS sent, min(announced_at) AS oldest FROM announcements "
        "WHERE announced_at >= ? GROUP BY channel_id",
        (to_db_time(since),))
    recent = {}
    for row in rows:
        oldest = from_db_time(row["oldest"])
        assert oldest is not None
        recent[int(row["channel_id"])] = RecentSends(int(row["sent"]), oldest)
    return recent


async def load_work(database: Database, announcement_id: int) -> AnnouncementWork | None:
    row = await database.fetch_one(_WORK_SELECT + " WHERE a.id = ?", (announcement_id,))
    return None if row is None else _work(row)


async def edits_due(database: Database, limit: int = 50) -> list[AnnouncementWork]:
    """Announced posts that changed since their message was sent."""
    rows = await database.fetch_all(
        _WORK_SELECT + " WHERE a.needs_edit = 1 AND a.state = 'threaded' ORDER BY a.updated_at LIMIT ?",
        (limit,),
    )
    return [_work(row) for row in rows]


async def guild_overrides(database: Database) -> dict[int, GuildAnnounceSettings]:
    """The guilds that changed the per-cycle limit or the thread auto-archive duration."""
    rows = await database.fetch_all(
        "SELECT guild_id, announcements_per_cycle, thread_auto_archive_minutes FROM guild_settings "
        "WHERE announcements_per_cycle IS NOT NULL OR thread_auto_archive_minutes IS NOT NULL")
    return {row["guild_id"]: GuildAnnounceSettings(row["announcements_per_cycle"],
                                                   row["thread_auto_archive_minutes"]) for row in rows}


_FAILED_SELECT = """
SELECT a.id, a.post_id, a.guild_id, a.channel_id, a.error, a.error_code, a.attempts, a.updated_at,
       p.title, p.canonical_url
FROM announcements AS a JOIN posts AS p ON p.id = a.post_id
WHERE a.state = 'failed'
"""


async def failed_announcements(database: Database, guild_id: int, limit: int = 25) -> list[FailedAnnouncement]:
    """What ``/feed list`` shows: the guild's announcements that failed for good, newest first."""
    rows = await database.fetch_all(_FAILED_SELECT + " AND a.guild_id = ? ORDER BY a.updated_at DESC, a.id DESC"
                                    " LIMIT ?", (guild_id, limit))
    return [_failed(row) for row in rows]


async def unreported_failures(database: Database) -> list[FailedAnnouncement]:
    rows = await database.fetch_all(_FAILED_SELECT + " AND a.error_reported = 0 ORDER BY a.id")
    return [_failed(row) for row in rows]


# -- writes (each one transaction on the writer thread) ---------------------------------------------

def _now() -> str:
    return to_db_time(utcnow())


async def begin_attempt(database: Database, announcement_id: int) -> tuple[str, int] | None:
    """Count one more try; a queued row becomes ``pending`` (durably, before anything is sent).

    Returns the state the row was in before (``queued`` means nothing was ever tried for it) and the
    attempt count, or None when the row is no longer waiting (another cycle finished it)."""
    def op(connection: Connection) -> tuple[str, int] | None:
        before = connection.execute(
            "SELECT state FROM announcements WHERE id = ? AND state IN ('queued', 'pending', 'sent')",
            (announcement_id,),
        ).fetchone()
        if before is None:
            return None
        row = connection.execute(
            "UPDATE announcements SET state = CASE state WHEN 'queued' THEN 'pending' ELSE state END, "
            "attempts = attempts + 1, announced_at = coalesce(announced_at, ?1), updated_at = ?1 "
            "WHERE id = ?2 RETURNING attempts",
            (_now(), announcement_id),
        ).fetchone()
        return str(before[0]), int(row[0])

    return await database.write(op)


async def record_sent(database: Database, announcement_id: int, message_id: int) -> None:
    def op(connection: Connection) -> None:
        connection.execute(
            "UPDATE announcements SET state = 'sent', message_id = ?, error = NULL, error_code = NULL, "
            "next_attempt_at = NULL, retrying_since = NULL, updated_at = ? WHERE id = ? AND state = 'pending'",
            (message_id, _now(), announcement_id),
        )

    await database.write(op)


async def record_threaded(database: Database, work: AnnouncementWork, *, message_id: int, thread_id: int,
                          parent_channel_id: int, name: str) -> None:
    """The thread exists: the announcement is done and the thread is a tracked discussion."""
    def op(connection: Connection) -> None:
        now = _now()
        connection.execute(
            "UPDATE announcements SET state = 'threaded', message_id = ?, thread_id = ?, error = NULL, "
            "error_code = NULL, next_attempt_at = NULL, retrying_since = NULL, updated_at = ? WHERE id = ?",
            (message_id, thread_id, now, work.id),
        )
        connection.execute(
            "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, starter_message_id, name, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (thread_id, work.post_id, work.guild_id, parent_channel_id, message_id, name, now, now),
        )

    await database.write(op)


async def record_failed(database: Database, announcement_id: int, reason: str, code: int | None) -> None:
    def op(connection: Connection) -> None:
        connection.execute(
            "UPDATE announcements SET state = 'failed', error = ?, error_code = ?, error_reported = 0, "
            "next_attempt_at = NULL, retrying_since = NULL, updated_at = ? WHERE id = ?",
            (reason, code, _now(), announcement_id),
        )

    await database.write(op)


async def fail_queued_in_channel(database: Database, channel_id: int, reason: str, code: int | None) -> int:
    """The channel itself is unusable: every queued announcement for it fails with the same reason."""
    def op(connection: Connection) -> int:
        cursor = connection.execute(
            "UPDATE announcements SET state = 'failed', error = ?, error_code = ?, error_reported = 0, "
            "updated_at = ? WHERE channel_id = ? AND state = 'queued'",
            (reason, code, _now(), channel_id),
        )
        return cursor.rowcount

    return await database.write(op)


async def record_retry_later(database: Database, announcement_id: int, reason: str, code: int | None, *,
                             failed_at: datetime, next_attempt_at: datetime, counts: bool = True) -> datetime:
    """A passing problem (Discord down, network): the state stays, the last error is kept, and the
    row is not tried before ``next_attempt_at``. Returns since when it has been failing (the first
    failure of this run, or ``failed_at``); a wait that does not ``count`` (a full guild) starts no
    such run, as it must never make the announcement give up."""
    def op(connection: Connection) -> datetime:
        row = connection.execute(
            "UPDATE announcements SET error = ?1, error_code = ?2, next_attempt_at = ?3, updated_at = ?4, "
            "retrying_since = CASE WHEN ?5 THEN coalesce(retrying_since, ?4) ELSE retrying_since END "
            "WHERE id = ?6 RETURNING retrying_since",
            (reason, code, to_db_time(next_attempt_at), to_db_time(failed_at), counts, announcement_id),
        ).fetchone()
        since = from_db_time(row[0]) if row is not None else None
        return since or failed_at

    return await database.write(op)


async def mark_reported(database: Database, announcement_ids: Sequence[int]) -> None:
    def op(connection: Connection) -> None:
        connection.executemany("UPDATE announcements SET error_reported = 1 WHERE id = ?",
                               [(announcement_id,) for announcement_id in announcement_ids])

    await database.write(op)


async def finish_edit(database: Database, announcement_id: int, content_hash: str) -> bool:
    """Clear ``needs_edit`` unless the post changed again while it was being edited."""
    def op(connection: Connection) -> bool:
        cursor = connection.execute(
            "UPDATE announcements SET needs_edit = 0, updated_at = ? WHERE id = ? AND "
            "(SELECT content_hash FROM posts WHERE posts.id = announcements.post_id) = ?",
            (_now(), announcement_id, content_hash),
        )
        return cursor.rowcount == 1

    return await database.write(op)


async def record_thread_renamed(database: Database, thread_id: int, name: str) -> None:
    def op(connection: Connection) -> None:
        connection.execute("UPDATE threads SET name = ?, archived = 0, updated_at = ? WHERE thread_id = ?",
                           (name, _now(), thread_id))

    await database.write(op)


async def retry_failed(database: Database, guild_id: int, announcement_id: int | None = None) -> int:
    """After the admins fixed the cause: failed announcements are tried again, as interrupted ones
    (``pending``: the channel's history is checked before sending; ``sent`` when only the thread
    failed), so a retry can never duplicate a message. Returns how many."""
    one = "" if announcement_id is None else " AND id = ?"
    chosen = () if announcement_id is None else (announcement_id,)

    def op(connection: Connection) -> int:
        cursor = connection.execute(
            "UPDATE announcements SET state = CASE WHEN message_id IS NULL THEN 'pending' ELSE 'sent' END, "
            "attempts = 0, error = NULL, error_code = NULL, error_reported = 0, next_attempt_at = NULL, "
            f"retrying_since = NULL, updated_at = ? WHERE guild_id = ? AND state = 'failed'{one}",
            (_now(), guild_id, *chosen),
        )
        return cursor.rowcount

    return await database.write(op)


# -- a thread on request (/post show) ---------------------------------------------------------------

ThreadOutcome = Literal["queued", "possible", "threaded", "under_way", "failed", "no_feed", "not_found"]

_THREAD_REQUEST_SELECT = """
SELECT p.title, p.feed_id, f.channel_id AS feed_channel_id, a.id AS announcement_id, a.state,
       a.channel_id AS announce_channel_id, coalesce(t.thread_id, a.thread_id) AS thread_id
FROM posts AS p
LEFT JOIN feeds AS f ON f.id = p.feed_id
LEFT JOIN announcements AS a ON a.post_id = p.id
LEFT JOIN threads AS t ON t.post_id = p.id
WHERE p.guild_id = ? AND p.id = ?
"""


@dataclass(frozen=True, slots=True)
class ThreadRequest:
    """Where a post stands for a thread asked for by a member: ``possible`` (never announced: its
    announcement was skipped, or it has none; its feed can still announce it), ``queued`` (the
    request made it so), ``threaded`` (it has its thread), ``under_way`` (already being announced),
    ``failed`` (its announcement failed; ``/feed retry`` is the way), ``no_feed`` (its feed was
    removed: no channel to announce it in), ``not_found`` (no such post in the guild)."""

    outcome: ThreadOutcome
    title: str = ""
    channel_id: int | None = None
    thread_id: int | None = None


def _thread_request(row: Row | None) -> ThreadRequest:
    if row is None:
        return ThreadRequest("not_found")
    title = str(row["title"])
    if row["thread_id"] is not None:
        return ThreadRequest("threaded", title, row["announce_channel_id"], int(row["thread_id"]))
    state = row["state"]
    if state in ("queued", "pending", "sent"):
        return ThreadRequest("under_way", title, row["announce_channel_id"])
    if state == "failed":
        return ThreadRequest("failed", title, row["announce_channel_id"])
    if row["feed_channel_id"] is None:
        return ThreadRequest("no_feed", title)
    # skipped (or a 'threaded' row whose thread row is gone, which cannot be: one transaction), or none
    return ThreadRequest("possible", title, int(row["feed_channel_id"]))


async def thread_request_state(database: Database, guild_id: int, post_id: int) -> ThreadRequest:
    """Whether a member could ask for the post's thread now (a read; ``possible`` if so)."""
    return _thread_request(await database.fetch_one(_THREAD_REQUEST_SELECT, (guild_id, post_id)))


async def request_thread(database: Database, guild_id: int, post_id: int) -> ThreadRequest:
    """A member asked for the thread of a post that was never announced: its announcement becomes
    ``queued`` in its feed's current channel (created if the post had none), so the announcer sends
    it like any new post (same steps, same exactly-once, same rate). ``queued`` when this call did
    it; otherwise where the post stands, unchanged."""
    def op(connection: Connection) -> ThreadRequest:
        found = _thread_request(connection.execute(_THREAD_REQUEST_SELECT, (guild_id, post_id)).fetchone())
        if found.outcome != "possible":
            return found
        now = _now()
        updated = connection.execute(
            "UPDATE announcements SET state = 'queued', channel_id = ?1, message_id = NULL, thread_id = NULL, "
            "attempts = 0, needs_edit = 0, error = NULL, error_code = NULL, error_reported = 0, "
            "next_attempt_at = NULL, retrying_since = NULL, updated_at = ?2 WHERE post_id = ?3 AND state = 'skipped'",
            (found.channel_id, now, post_id)).rowcount
        if not updated:
            connection.execute(
                "INSERT INTO announcements (post_id, guild_id, channel_id, state, created_at, updated_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?)", (post_id, guild_id, found.channel_id, now, now))
        return ThreadRequest("queued", found.title, found.channel_id)

    return await database.write(op)
