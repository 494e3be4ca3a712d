"""All SQL for comments, their revisions, attachments and reactions, user privacy, and the
discussion state (rename, archive, lock, delete) of the ``threads`` rows.

Writes are ``WriteOp`` factories: each returns a small function that runs inside one SAVEPOINT on
the writer thread, to be handed to ``Database.enqueue`` (fire and forget, durable within the
writer's batch delay) or ``Database.write`` (wait for the commit and get the result).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.model.discord_ids import DISCORD_EPOCH_MS, TIMESTAMP_SHIFT, snowflake_time
from bot.model.messages import (
    AttachmentInfo,
    Extra,
    IncomingMessage,
    ReactionCount,
    StoredComment,
    ThreadChange,
    ThreadState,
)
from bot.storage.db import Database, WriteOp, from_db_time, to_db_time
from bot.storage.sql import INTEGRITY_ERRORS, Connection, Row, on_its_own, on_postgresql

log = logging.getLogger(__name__)
# Host parameters per IN (...) list, well under SQLite's limit (999 in older builds).
_CHUNK = 500

# ---------------------------------------------------------------------------------------------
# Reads


async def tracked_thread_ids(database: Database) -> set[int]:
    """Every thread that is a post's discussion and still exists."""
    rows = await database.fetch_all("SELECT thread_id FROM threads WHERE deleted_at IS NULL")
    return {int(row[0]) for row in rows}


async def is_tracked_thread(database: Database, thread_id: int) -> bool:
    value = await database.fetch_value(
        "SELECT 1 FROM threads WHERE thread_id = ? AND deleted_at IS NULL", (thread_id,))
    return value is not None


def _thread_state(row: Row) -> ThreadState:
    return ThreadState(
        thread_id=int(row["thread_id"]), post_id=int(row["post_id"]), guild_id=int(row["guild_id"]),
        parent_channel_id=int(row["parent_channel_id"]),
        starter_message_id=None if row["starter_message_id"] is None else int(row["starter_message_id"]),
        name=str(row["name"]), archived=bool(row["archived"]), locked=bool(row["locked"]),
        deleted=row["deleted_at"] is not None, last_reconciled_at=from_db_time(row["last_reconciled_at"]),
    )


async def get_thread(database: Database, thread_id: int) -> ThreadState | None:
    row = await database.fetch_one("SELECT * FROM threads WHERE thread_id = ?", (thread_id,))
    return None if row is None else _thread_state(row)


async def live_threads(database: Database) -> list[ThreadState]:
    """Tracked threads that were not deleted, archived ones included (for catch-up)."""
    rows = await database.fetch_all("SELECT * FROM threads WHERE deleted_at IS NULL ORDER BY thread_id")
    return [_thread_state(row) for row in rows]


async def threads_active_since(database: Database, since_id: int) -> list[ThreadState]:
    """Live threads created, or with a stored message, at or after the id ``since_id``."""
    rows = await database.fetch_all(
        "SELECT * FROM threads AS t WHERE deleted_at IS NULL AND (thread_id >= ? OR EXISTS ("
        "SELECT 1 FROM comments AS c WHERE c.thread_id = t.thread_id AND c.message_id >= ?)) ORDER BY thread_id",
        (since_id, since_id))
    return [_thread_state(row) for row in rows]


async def tracked_parent_channel_ids(database: Database) -> list[int]:
    """The channels (text or forum) the live tracked threads belong to."""
    rows = await database.fetch_all(
        "SELECT DISTINCT parent_channel_id FROM threads WHERE deleted_at IS NULL ORDER BY parent_channel_id")
    return [int(row[0]) for row in rows]


async def threads_to_reconcile(database: Database, quiet_before: int) -> list[ThreadState]:
    """Live threads but the retired ones: a thread archived, with no activity (thread or stored
    message id) from the id ``quiet_before`` on, and reconciled after its last activity, is left
    alone (it is back once it is unarchived, which a new message does)."""
    rows = await database.fetch_all(
        "SELECT *, CASE WHEN newest > thread_id THEN newest ELSE thread_id END AS last_activity "
        "FROM (SELECT t.*, (SELECT MAX(message_id) FROM comments AS c WHERE c.thread_id = t.thread_id) AS newest "
        "      FROM threads AS t WHERE deleted_at IS NULL) AS live ORDER BY thread_id")
    chosen: list[ThreadState] = []
    for row in rows:
        thread = _thread_state(row)
        last_activity = int(row["last_activity"])
        retired = (thread.archived and last_activity < quiet_before and thread.last_reconciled_at is not None
                   and thread.last_reconciled_at > snowflake_time(last_activity))
        if not retired:
            chosen.append(thread)
    return chosen


async def last_message_id(database: Database, thread_id: int) -> int | None:
    value = await database.fetch_value(
        "SELECT MAX(message_id) FROM comments WHERE thread_id = ? AND origin = 'discord'", (thread_id,))
    return None if value is None else int(value)


def _comment(row: Row) -> StoredComment:
    extras = tuple(Extra(kind=str(item["kind"]), name=str(item["name"]), url=str(item["url"]))
                   for item in json.loads(row["extras"]))
    created = from_db_time(row["created_at"])
    assert created is not None
    return StoredComment(
        message_id=int(row["message_id"]), post_id=int(row["post_id"]),
        thread_id=None if row["thread_id"] is None else int(row["thread_id"]),
        author_id=None if row["author_id"] is None else int(row["author_id"]),
        author_name=str(row["author_name"]), is_bot=bool(row["is_bot"]), content=str(row["content"]),
        clean_content=str(row["clean_content"]), created_at=created,
        edited_at=from_db_time(row["edited_at"]), deleted_at=from_db_time(row["deleted_at"]),
        reply_to=None if row["reply_to"] is None else int(row["reply_to"]), hidden=bool(row["hidden"]),
        extras=extras,
    )


async def get_comment(database: Database, message_id: int) -> StoredComment | None:
    row = await database.fetch_one("SELECT * FROM comments WHERE message_id = ?", (message_id,))
    return None if row is None else _comment(row)


async def thread_comments(database: Database, thread_id: int) -> list[StoredComment]:
    rows = await database.fetch_all(
        "SELECT * FROM comments WHERE thread_id = ? ORDER BY message_id", (thread_id,))
    return [_comment(row) for row in rows]


async def comment_revisions(database: Database, message_id: int) -> list[tuple[str, datetime]]:
    rows = await database.fetch_all(
        "SELECT content, replaced_at FROM comment_revisions WHERE message_id = ? ORDER BY id", (message_id,))
    result: list[tuple[str, datetime]] = []
    for row in rows:
        replaced = from_db_time(row["replaced_at"])
        assert replaced is not None
        result.append((str(row["content"]), replaced))
    return result


async def comment_attachments(database: Database, message_id: int) -> list[AttachmentInfo]:
    rows = await database.fetch_all(
        "SELECT attachment_id, filename, url, size, content_type FROM attachments WHERE message_id = ? "
        "ORDER BY id", (message_id,))
    return [AttachmentInfo(attachment_id=int(row[0] or 0), filename=str(row[1]), url=str(row[2]),
                           size=int(row[3]), content_type=row[4]) for row in rows]


async def comment_reactions(database: Database, message_id: int) -> dict[str, int]:
    rows = await database.fetch_all(
        "SELECT emoji, count FROM reactions WHERE message_id = ? ORDER BY emoji", (message_id,))
    return {str(row[0]): int(row[1]) for row in rows}


async def is_opted_out(database: Database, user_id: int) -> bool:
    value = await database.fetch_value("SELECT opted_out FROM user_privacy WHERE user_id = ?", (user_id,))
    return bool(value)


async def stored_comment_count(database: Database, user_id: int) -> int:
    """How many live (not erased) comments of this user are stored."""
    value = await database.fetch_value(
        "SELECT COUNT(*) FROM comments WHERE author_id = ? AND deleted_at IS NULL AND origin = 'discord'",
        (user_id,))
    return int(value or 0)


async def announce_channel_ids(database: Database, guild_id: int) -> list[int]:
    """The channels the guild's feeds announce in (where the admins look for the bot)."""
    rows = await database.fetch_all(
        "SELECT channel_id FROM feeds WHERE guild_id = ? GROUP BY channel_id ORDER BY MIN(id)", (guild_id,))
    return [int(row[0]) for row in rows]


# ---------------------------------------------------------------------------------------------
# Writes (run on the writer thread)


def _extras_json(extras: Sequence[Extra]) -> str:
    return json.dumps([{"kind": e.kind, "name": e.name, "url": e.url} for e in extras], ensure_ascii=False)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else to_db_time(moment)


def _replace_attachments(connection: Connection, message_id: int,
                         attachments: Sequence[AttachmentInfo]) -> None:
    connection.execute("DELETE FROM attachments WHERE message_id = ?", (message_id,))
    if attachments:
        connection.executemany(
            "INSERT INTO attachments (message_id, attachment_id, filename, url, size, content_type) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(message_id, a.attachment_id, a.filename, a.url, a.size, a.content_type) for a in attachments])


def _replace_reactions(connection: Connection, message_id: int,
                       reactions: Sequence[ReactionCount]) -> None:
    connection.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
    rows = [(message_id, r.emoji, r.count) for r in reactions if r.count > 0]
    if rows:
        connection.executemany("INSERT INTO reactions (message_id, emoji, count) VALUES (?, ?, ?)", rows)


_INSERT_COMMENT = """
INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, author_avatar_url, is_bot,
                      content, clean_content, extras, created_at, edited_at, reply_to)
SELECT ?, threads.post_id, threads.thread_id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
FROM threads
WHERE threads.thread_id = ?
  AND NOT EXISTS (SELECT 1 FROM user_privacy WHERE user_id = ? AND opted_out = 1)
ON CONFLICT (message_id) DO NOTHING
"""


def insert_comment(connection: Connection, message: IncomingMessage, clean_content: str) -> bool:
    """Store a new comment (a no-op when it is stored already, its thread is not tracked, or its
    author opted out). Returns whether a row was written."""
    cursor = connection.execute(_INSERT_COMMENT, (
        message.message_id, message.author_id, message.author_name, message.author_avatar_url,
        int(message.author_is_bot), message.content, clean_content, _extras_json(message.extras),
        to_db_time(message.created_at), _time(message.edited_at), message.reply_to,
        message.channel_id, message.author_id))
    if cursor.rowcount != 1:
        return False
    if message.attachments:
        _replace_attachments(connection, message.message_id, message.attachments)
    if message.reactions:
        _replace_reactions(connection, message.message_id, message.reactions)
    return True


# Many new comments in one statement whose only parameter is a JSON array of rows. On the writer
# thread every sqlite3 call gives the GIL up and must win it back from a busy event loop, and binding
# parameters holds the GIL: one JSON text is a single bind, the statement is always the same
# (prepared once), and SQLite unpacks the rows with the GIL released. The JSON is encoded by the
# caller, on the event loop, in C. Comments are indexed for search by the insert trigger.
# The creation time is the one in the message id, written as to_db_time() writes it (the database
# does it in C, the loop would spend 2.5 us a message on it). PostgreSQL unpacks the same JSON with
# its own functions, as jsonb: parsed once (each ->> of a json value parses its text again, a third
# of the statement's time for 1,000 rows).
_SNOWFLAKE_MS = f"((m.id >> {TIMESTAMP_SHIFT}) + {DISCORD_EPOCH_MS})"
_INSERT_COMMENTS_JSON_TEMPLATE = """
INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, author_avatar_url, is_bot,
                      content, clean_content, extras, created_at, edited_at, reply_to)
SELECT m.id, threads.post_id, threads.thread_id, m.author_id, m.author_name, m.author_avatar_url, m.is_bot,
       m.content, m.clean_content, m.extras, {created_at}, m.edited_at, m.reply_to
FROM ({rows}) AS m
JOIN threads ON threads.thread_id = m.thread_id
WHERE NOT EXISTS (SELECT 1 FROM user_privacy WHERE user_id = m.author_id AND opted_out = 1)
ON CONFLICT (message_id) DO NOTHING
"""
_INSERT_COMMENTS_JSON = _INSERT_COMMENTS_JSON_TEMPLATE.format(
    created_at=f"""(strftime('%Y-%m-%dT%H:%M:%S', {_SNOWFLAKE_MS} / 1000, 'unixepoch')
        || printf('.%03d000+00:00', {_SNOWFLAKE_MS} % 1000))""",
    rows="""SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS author_id,
             json_extract(value, '$[2]') AS author_name, json_extract(value, '$[3]') AS author_avatar_url,
             json_extract(value, '$[4]') AS is_bot, json_extract(value, '$[5]') AS content,
             json_extract(value, '$[6]') AS clean_content, json_extract(value, '$[7]') AS extras,
             json_extract(value, '$[8]') AS edited_at, json_extract(value, '$[9]') AS reply_to,
             json_extract(value, '$[10]') AS thread_id
      FROM json_each(?)""")
_INSERT_COMMENTS_JSON_POSTGRESQL = _INSERT_COMMENTS_JSON_TEMPLATE.format(
    created_at=f"""(to_char(to_timestamp({_SNOWFLAKE_MS} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || '.' || lpad(({_SNOWFLAKE_MS} % 1000)::text, 3, '0') || '000+00:00')""",
    rows="""SELECT (value->>0)::bigint AS id, (value->>1)::bigint AS author_id,
             value->>2 AS author_name, value->>3 AS author_avatar_url,
             (value->>4)::integer AS is_bot, value->>5 AS content,
             value->>6 AS clean_content, value->>7 AS extras,
             value->>8 AS edited_at, (value->>9)::bigint AS reply_to,
             (value->>10)::bigint AS thread_id
      FROM jsonb_array_elements(?::jsonb) AS value""")
_encode_rows = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode


def store_comments(batch: Sequence[tuple[IncomingMessage, str]]) -> WriteOp[int]:
    """Store many new comments at once (same rules as :func:`insert_comment`); returns how many
    rows were written. The rows are encoded here, by the caller, so the writer thread only runs
    SQL (it needs the GIL for as little as possible while the event loop is busy)."""
    rows: list[object] = []
    plain: list[tuple[IncomingMessage, str]] = []
    special: list[tuple[IncomingMessage, str]] = []
    for message, clean in batch:
        if message.attachments or message.reactions:
            special.append((message, clean))
            continue
        plain.append((message, clean))
        rows.append((message.message_id, message.author_id, message.author_name, message.author_avatar_url,
                     int(message.author_is_bot), message.content, clean,
                     _extras_json(message.extras) if message.extras else "[]",
                     _time(message.edited_at), message.reply_to, message.channel_id))
    document = _encode_rows(rows) if rows else None

    def op(connection: Connection) -> int:
        written = 0
        for message, clean in special:
            written += insert_comment(connection, message, clean)
        if document is not None:
            statement = _INSERT_COMMENTS_JSON_POSTGRESQL if on_postgresql(connection) else _INSERT_COMMENTS_JSON
            try:
                with on_its_own(connection):
                    written += max(connection.execute(statement, (document,)).rowcount, 0)
            except INTEGRITY_ERRORS:
                # The failed statement undid itself; one bad row must not cost the others theirs.
                written += _store_one_by_one(connection, plain)
        return written
    return op


def _store_one_by_one(connection: Connection, batch: Sequence[tuple[IncomingMessage, str]]) -> int:
    written = 0
    for message, clean in batch:
        try:
            with on_its_own(connection):
                written += insert_comment(connection, message, clean)
        except INTEGRITY_ERRORS:
            log.exception("message %d could not be stored as a comment", message.message_id)
    return written


def apply_message_state(connection: Connection, message: IncomingMessage, clean_content: str,
                        *, now: datetime) -> str:
    """Bring a comment to the message as Discord shows it now: store it when missing, keep the old
    text as a revision when the text changed, refresh attachments, extras and (when known) reactions.

    Never touches a tombstone (a deleted or erased comment stays erased). Returns what happened:
    "stored", "edited", "refreshed", "unchanged", "tombstone" or "skipped".
    """
    row = connection.execute(
        "SELECT content, edited_at, deleted_at, extras FROM comments WHERE message_id = ?",
        (message.message_id,)).fetchone()
    if row is None:
        return "stored" if insert_comment(connection, message, clean_content) else "skipped"
    if row["deleted_at"] is not None:
        return "tombstone"
    stored_edit = row["edited_at"]
    new_edit = _time(message.edited_at)
    if stored_edit is not None and new_edit is not None and new_edit < stored_edit:
        return "unchanged"  # an older view of the message (history fetched before a live edit)
    outcome = "unchanged"
    if row["content"] != message.content:
        connection.execute(
            "INSERT INTO comment_revisions (message_id, content, replaced_at) VALUES (?, ?, ?)",
            (message.message_id, row["content"], new_edit or to_db_time(now)))
        connection.execute(
            "UPDATE comments SET content = ?, clean_content = ?, edited_at = ?, extras = ? WHERE message_id = ?",
            (message.content, clean_content, new_edit or to_db_time(now), _extras_json(message.extras),
             message.message_id))
        outcome = "edited"
    else:
        extras = _extras_json(message.extras)
        if extras != row["extras"] or (new_edit is not None and new_edit != stored_edit):
            connection.execute("UPDATE comments SET extras = ?, edited_at = COALESCE(?, edited_at) "
                               "WHERE message_id = ?", (extras, new_edit, message.message_id))
            outcome = "refreshed"
    current = [(int(r[0] or 0), r[1], r[2], int(r[3]), r[4]) for r in connection.execute(
        "SELECT attachment_id, filename, url, size, content_type FROM attachments WHERE message_id = ? "
        "ORDER BY id", (message.message_id,))]
    wanted = [(a.attachment_id, a.filename, a.url, a.size, a.content_type) for a in message.attachments]
    if current != wanted:
        _replace_attachments(connection, message.message_id, message.attachments)
        outcome = "refreshed" if outcome == "unchanged" else outcome
    if message.reactions is not None:
        _replace_reactions(connection, message.message_id, message.reactions)
    return outcome


def update_comment(message: IncomingMessage, clean_content: str, now: datetime) -> WriteOp[str]:
    def op(connection: Connection) -> str:
        return apply_message_state(connection, message, clean_content, now=now)
    return op


def _tombstone(connection: Connection, where: str, parameters: tuple[object, ...], now: str) -> int:
    """Erase everything of the matching live comments but their place in the thread."""
    ids = [int(row[0]) for row in connection.execute(
        f"SELECT message_id FROM comments WHERE deleted_at IS NULL AND ({where})", parameters)]
    if not ids:
        return 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for table in ("attachments", "comment_revisions", "reactions"):
            connection.execute(f"DELETE FROM {table} WHERE message_id IN ({marks})", chunk)
        connection.execute(
            f"UPDATE comments SET content = '', clean_content = '', extras = '[]', author_name = '', "
            f"author_avatar_url = NULL, author_id = NULL, deleted_at = ? WHERE message_id IN ({marks})",
            (now, *chunk))
    return len(ids)


def tombstone_comments(message_ids: Iterable[int], now: datetime) -> WriteOp[int]:
    ids = sorted(set(message_ids))

    def op(connection: Connection) -> int:
        total = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            total += _tombstone(connection, f"message_id IN ({','.join('?' * len(chunk))})",
                                tuple(chunk), to_db_time(now))
        return total
    return op


def sync_history_page(thread_id: int, messages: Sequence[tuple[IncomingMessage, str]],
                      present_ids: frozenset[int], low: int, high: int,
                      now: datetime) -> WriteOp[dict[str, int]]:
    """Make the stored comments with ids in [low, high] match a complete page of the thread's
    history for that id range: store or update ``messages`` (the ones worth storing), and tombstone
    the stored ones whose id is not in ``present_ids`` (every id Discord still has there)."""
    def op(connection: Connection) -> dict[str, int]:
        tally: dict[str, int] = {}
        for message, clean in messages:
            outcome = apply_message_state(connection, message, clean, now=now)
            tally[outcome] = tally.get(outcome, 0) + 1
        present = present_ids
        stored = [int(row[0]) for row in connection.execute(
            "SELECT message_id FROM comments WHERE thread_id = ? AND origin = 'discord' AND deleted_at IS NULL "
            "AND message_id BETWEEN ? AND ?", (thread_id, low, high))]
        gone = [message_id for message_id in stored if message_id not in present]
        if gone:
            tally["deleted"] = tombstone_comments(gone, now)(connection)
        return tally
    return op


def add_reaction(message_id: int, emoji: str) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        connection.execute(
            "INSERT INTO reactions (message_id, emoji, count) SELECT message_id, ?, 1 FROM comments "
            "WHERE message_id = ? AND deleted_at IS NULL "
            "ON CONFLICT (message_id, emoji) DO UPDATE SET count = reactions.count + 1", (emoji, message_id))
    return op


def remove_reaction(message_id: int, emoji: str) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        connection.execute("DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND count <= 1",
                           (message_id, emoji))
        connection.execute("UPDATE reactions SET count = count - 1 WHERE message_id = ? AND emoji = ?",
                           (message_id, emoji))
    return op


def clear_reactions(message_id: int, emoji: str | None = None) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        if emoji is None:
            connection.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
        else:
            connection.execute("DELETE FROM reactions WHERE message_id = ? AND emoji = ?", (message_id, emoji))
    return op


def update_thread(change: ThreadChange, now: datetime) -> WriteOp[bool]:
    """Record a rename, archive, lock or delete on the post's discussion (comments are kept)."""
    def op(connection: Connection) -> bool:
        stamp = to_db_time(now)
        if change.deleted:
            cursor = connection.execute(
                "UPDATE threads SET deleted_at = COALESCE(deleted_at, ?), updated_at = ? WHERE thread_id = ?",
                (stamp, stamp, change.thread_id))
            return cursor.rowcount == 1
        cursor = connection.execute(
            "UPDATE threads SET name = COALESCE(?, name), archived = COALESCE(?, archived), "
            "locked = COALESCE(?, locked), updated_at = ? WHERE thread_id = ?",
            (change.name, None if change.archived is None else int(change.archived),
             None if change.locked is None else int(change.locked), stamp, change.thread_id))
        return cursor.rowcount == 1
    return op


def mark_reconciled(thread_id: int, now: datetime) -> WriteOp[None]:
    def op(connection: Connection) -> None:
        connection.execute("UPDATE threads SET last_reconciled_at = ? WHERE thread_id = ?",
                           (to_db_time(now), thread_id))
    return op


def set_opted_out(user_id: int, opted_out: bool, now: datetime) -> WriteOp[int]:
    """Record the choice; opting out also erases every stored comment of the user (tombstones stay
    so replies still hang together). Returns how many comments were erased."""
    def op(connection: Connection) -> int:
        stamp = to_db_time(now)
        connection.execute(
            "INSERT INTO user_privacy (user_id, opted_out, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET opted_out = excluded.opted_out, changed_at = excluded.changed_at",
            (user_id, int(opted_out), stamp))
        if not opted_out:
            return 0
        return _tombstone(connection, "author_id = ? AND origin = 'discord'", (user_id,), stamp)
    return op


def set_hidden(message_id: int, hidden: bool) -> WriteOp[bool]:
    """Hide a comment from the blog (or show it again). False when it is not a stored comment."""
    def op(connection: Connection) -> bool:
        cursor = connection.execute("UPDATE comments SET hidden = ? WHERE message_id = ?",
                                    (int(hidden), message_id))
        return cursor.rowcount == 1
    return op


def claim_intent_warning(guild_id: int, now: datetime) -> WriteOp[bool]:
    """Mark the missing-intent warning as sent for the guild; False if it already was."""
    def op(connection: Connection) -> bool:
        stamp = to_db_time(now)
        connection.execute(
            "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, stamp))
        cursor = connection.execute(
            "UPDATE guild_settings SET intent_warning_sent_at = ?, updated_at = ? "
            "WHERE guild_id = ? AND intent_warning_sent_at IS NULL", (stamp, stamp, guild_id))
        return cursor.rowcount == 1
    return op
