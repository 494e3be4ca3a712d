"""Seeding helpers for the blog-side tests: rows written straight through ``Database.write``."""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.storage.db import Database, to_db_time

GUILD = 111111111111111111
CHANNEL = 222222222222222222
BASE_TIME = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
_ids = itertools.count(1_300_000_000_000_000_000, 1_000_000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def next_id() -> int:
    return next(_ids)


async def add_post(database: Database, url: str, title: str, *, guild_id: int = GUILD,
                   thread_id: int | None = None, author: str | None = "Kirk", guid: str | None = None,
                   published: datetime = BASE_TIME, channel_id: int = CHANNEL,
                   public: bool | None = True) -> int:
    """A post, with a thread in ``channel_id`` when ``thread_id`` is given; ``public`` records whether
    @everyone can view that channel (None: not known yet)."""
    def op(connection: sqlite3.Connection) -> int:
        now = to_db_time(published)
        cursor = connection.execute(
            "INSERT INTO posts (guild_id, canonical_url, guid, title, author, summary, published_at, "
            "first_seen_at) VALUES (?, ?, ?, ?, ?, '', ?, ?) RETURNING id",
            (guild_id, url, guid, title, author, now, now))
        post_id = int(cursor.fetchone()[0])
        if thread_id is not None:
            connection.execute(
                "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (thread_id, post_id, guild_id, channel_id, title[:100], now, now))
            if public is not None:
                set_channel_public(connection, guild_id, channel_id, public)
        return post_id

    return await database.write(op)


def set_channel_public(connection: sqlite3.Connection, guild_id: int, channel_id: int, public: bool) -> None:
    connection.execute(
        "INSERT INTO channel_visibility (channel_id, guild_id, public, checked_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (channel_id) DO UPDATE SET public = excluded.public",
        (channel_id, guild_id, int(public), to_db_time(BASE_TIME)))


async def add_comment(database: Database, post_id: int, content: str, *, author_id: int | None = 501,
                      author_name: str = "reader", avatar: str | None = None, thread_id: int | None = None,
                      minutes: float = 0, reply_to: int | None = None, hidden: bool = False,
                      deleted: bool = False, edited: bool = False, is_bot: bool = False,
                      message_id: int | None = None, extras: Sequence[dict[str, str]] = ()) -> int:
    message_id = message_id or next_id()
    created = BASE_TIME + timedelta(minutes=minutes)

    def op(connection: sqlite3.Connection) -> int:
        connection.execute(
            "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, author_avatar_url, "
            "is_bot, content, clean_content, extras, created_at, edited_at, deleted_at, reply_to, hidden) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, post_id, thread_id, author_id, author_name, avatar, int(is_bot),
             "" if deleted else content, "" if deleted else content, json.dumps(list(extras)),
             to_db_time(created), to_db_time(created + timedelta(minutes=1)) if edited else None,
             to_db_time(created + timedelta(minutes=2)) if deleted else None, reply_to, int(hidden)))
        return message_id

    return await database.write(op)


async def add_reaction(database: Database, message_id: int, emoji: str, count: int) -> None:
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO reactions (message_id, emoji, count) VALUES (?, ?, ?)",
                           (message_id, emoji, count))

    await database.write(op)


async def add_attachment(database: Database, message_id: int, filename: str, url: str, *,
                         content_type: str | None = "image/png", size: int = 1234) -> None:
    def op(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO attachments (message_id, attachment_id, filename, url, size, content_type) "
            "VALUES (?, ?, ?, ?, ?, ?)", (message_id, next_id(), filename, url, size, content_type))

    await database.write(op)


async def opt_out(database: Database, user_id: int) -> None:
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO user_privacy (user_id, opted_out, changed_at) VALUES (?, 1, ?) "
                           "ON CONFLICT (user_id) DO UPDATE SET opted_out = 1, changed_at = excluded.changed_at",
                           (user_id, to_db_time(BASE_TIME)))

    await database.write(op)


async def add_feed(database: Database, url: str, *, failures: int = 0, disabled: str | None = None,
                   paused: bool = False) -> None:
    def op(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO feeds (guild_id, url, channel_id, consecutive_failures, disabled_reason, paused, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (GUILD, url, CHANNEL, failures, disabled, int(paused), to_db_time(BASE_TIME)))

    await database.write(op)


# The malicious comments the API tests and the browser test share.
HOSTILE_COMMENTS = (
    "<script>window.__pwned = 'script'</script> plain script tag",
    "<img src=x onerror=\"window.__pwned = 'img'\"> image with onerror",
    "[click me](javascript:window.__pwned='link') masked javascript link",
    "<a href=\"javascript:window.__pwned='a'\">raw anchor</a>",
    "||<svg onload=\"window.__pwned='svg'\">|| spoiler svg",
    "`<b>code</b>` and\n```html\n<script>window.__pwned='fence'</script>\n```",
    "[x](https://example.com\" onmouseover=\"window.__pwned='attr') attribute break-out",
    "> <iframe src=\"javascript:window.__pwned='iframe'\"></iframe> quoted iframe",
    "<@1> and <@&2> and <#3> mentions of unknown ids",
)


@dataclass
class BlogPage:
    """A blog on 127.0.0.1 that serves ``html`` at ``path``: the page the browser tests embed the widget in."""

    path: str
    html: str = ""
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=self.html, content_type="text/html")

        app = web.Application()
        app.router.add_get(self.path, page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
