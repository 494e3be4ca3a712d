"""Helpers for the feed tests: a real aiohttp server on 127.0.0.1 with programmable routes, feed
document builders, a fake clock, and a temporary database."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "feeds"
CORPUS_FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "feeds"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


@dataclass
class ServedFeed:
    """A document served with validators: answers 304 to a matching If-None-Match/If-Modified-Since."""

    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        headers: dict[str, str] = {}
        if self.etag:
            headers["ETag"] = self.etag
        if self.last_modified:
            headers["Last-Modified"] = self.last_modified
        if self.etag and request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers=headers)
        if self.last_modified and request.headers.get("If-Modified-Since") == self.last_modified:
            return web.Response(status=304, headers=headers)
        body = self.body
        if self.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = self.content_type
        return web.Response(body=body, headers=headers)


@dataclass
class FeedServer:
    """``await server.start()``; ``server.routes[path] = handler``; ``server.url(path)``."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> FeedServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for request in self.requests if request.path == path)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(SeenRequest(request.path_qs, dict(request.headers)))
        handler = self.routes.get(request.path_qs) or self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such feed")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    # -- route builders ---------------------------------------------------------------------------

    def serve(self, path: str, body: bytes, **options: object) -> ServedFeed:
        feed = ServedFeed(body, **options)  # type: ignore[arg-type]
        self.routes[path] = feed
        return feed

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": to})

        self.routes[path] = handler

    def status(self, path: str, status: int, headers: dict[str, str] | None = None, text: str = "") -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers=headers or {}, text=text)

        self.routes[path] = handler

    def slow(self, path: str, delay: float, body: bytes = b"<rss/>") -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay)
            return web.Response(body=body, content_type="application/rss+xml")

        self.routes[path] = handler

    def endless(self, path: str, *, declare_length: int | None = None) -> None:
        """Streams zero bytes until the client stops reading (11 MiB at most)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
            if declare_length is not None:
                response.content_length = declare_length
            await response.prepare(request)
            chunk = b"<!-- padding -->" * 4096
            sent = 0
            try:
                while sent < 11 * 1024 * 1024:
                    await response.write(chunk)
                    sent += len(chunk)
            except (ConnectionResetError, RuntimeError):
                pass
            return response

        self.routes[path] = handler


@dataclass(frozen=True)
class Item:
    title: str
    link: str
    guid: str | None = None
    published: datetime | None = None
    description: str = ""


def rss_document(items: list[Item], *, title: str = "Test Blog", link: str = "https://blog.example.com/") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link><description>d</description>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title><link>{escape(item.link)}</link>")
        if item.guid is not None:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.published is not None:
            parts.append(f"<pubDate>{format_datetime(item.published.astimezone(UTC), usegmt=True)}</pubDate>")
        parts.append(f"<description>{escape(item.description)}</description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def numbered_items(count: int, *, start: int = 1, newest: datetime | None = None, host: str = "blog.example.com",
                   guid_prefix: str = "post-", spacing: timedelta = timedelta(days=1)) -> list[Item]:
    """``count`` items numbered downwards from ``start + count - 1`` (newest first), ``spacing`` apart."""
    top = newest or datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # an hour before FakeClock's start
    numbers = range(start + count - 1, start - 1, -1)
    return [
        Item(f"Post {n}", f"https://{host}/{n}/", f"{guid_prefix}{n}",
             top - spacing * (start + count - 1 - n), f"<p>Body of post {n}</p>")
        for n in numbers
    ]


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def jump_to(self, moment: datetime) -> None:
        self.now = max(self.now, moment)
