"""SQL for replying from the blog: readers' sessions and the comments posted for them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.db import Database, from_db_time, to_db_time, utcnow
from bot.storage.sql import Connection


@dataclass(frozen=True, slots=True)
class WebSession:
    user_id: int
    user_name: str
    avatar_url: str | None
    origin: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(database: Database, token: str, *, user_id: int, user_name: str, avatar_url: str | None,
                       origin: str, lifetime: timedelta) -> None:
    now = utcnow()

    def op(connection: Connection) -> None:
        connection.execute(
            "INSERT INTO web_sessions (token_hash, user_id, user_name, avatar_url, origin, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_hash(token), user_id, user_name, avatar_url, origin, to_db_time(now), to_db_time(now + lifetime)))
        # Expired sessions are of no use to anyone: dropped whenever a new one opens.
        connection.execute("DELETE FROM web_sessions WHERE expires_at < ?", (to_db_time(now),))

    await database.write(op)


async def find_session(database: Database, token: str) -> WebSession | None:
    """The live session of ``token``: not revoked, not expired."""
    row = await database.fetch_one(
        "SELECT user_id, user_name, avatar_url, origin, expires_at FROM web_sessions "
        "WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?", (token_hash(token), to_db_time(utcnow())))
    if row is None:
        return None
    expires = from_db_time(row["expires_at"])
    assert expires is not None
    return WebSession(user_id=int(row["user_id"]), user_name=str(row["user_name"]), avatar_url=row["avatar_url"],
                      origin=str(row["origin"]), expires_at=expires)


async def revoke_session(database: Database, token: str) -> bool:
    def op(connection: Connection) -> bool:
        cursor = connection.execute(
            "UPDATE web_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
            (to_db_time(utcnow()), token_hash(token)))
        return cursor.rowcount == 1

    return await database.write(op)


async def record_blog_reply(database: Database, *, message_id: int, thread_id: int, author_id: int,
                            author_name: str, author_avatar_url: str | None, reply_to: int | None) -> None:
    """Remember whose comment a webhook message is; if the capture stored it already, attribute it now
    (else the trigger of migration 0005 does when it is stored)."""

    def op(connection: Connection) -> None:
        connection.execute(
            "INSERT INTO blog_replies (message_id, thread_id, author_id, author_name, author_avatar_url, reply_to, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (message_id, thread_id, author_id, author_name, author_avatar_url, reply_to, to_db_time(utcnow())))
        connection.execute(
            "UPDATE comments SET author_id = ?, author_name = ?, author_avatar_url = ?, is_bot = 0, "
            "reply_to = COALESCE(?, reply_to) WHERE message_id = ? AND deleted_at IS NULL",
            (author_id, author_name, author_avatar_url, reply_to, message_id))

    await database.write(op)


async def blog_reply_author(database: Database, message_id: int) -> tuple[int, int] | None:
    """(author id, thread id) of a comment posted from the blog, or None."""
    row = await database.fetch_one("SELECT author_id, thread_id FROM blog_replies WHERE message_id = ?",
                                   (message_id,))
    return None if row is None else (int(row["author_id"]), int(row["thread_id"]))
