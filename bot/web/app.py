"""The web server in the bot's process: comments API, embed script, discussion page, health.

Every API answer is JSON with an ``ETag`` and a short ``Cache-Control``; ``If-None-Match`` gives 304.
A discussion's ETag is the post's version (see :mod:`bot.web.cache`), so a 304 costs one lookup;
other answers hash their (small) body. Errors are never cached. CORS headers are sent only to
origins listed in ``WEB_ALLOWED_ORIGINS``. Only public discussions are served (``public_only``)
unless ``WEB_INCLUDE_PRIVATE`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

import bot
from bot.config import Settings
from bot.feeds.websub import PostsStored, PushReceiver
from bot.storage import blog
from bot.storage import webhooks as webhook_storage
from bot.storage.blog import BlogComment, BlogPost
from bot.storage.db import Database
from bot.storage.sql import DATABASE_ERRORS
from bot.web.atom import FEED_ENTRIES, Feed, FeedEntry, render_feed
from bot.web.cache import SharedCalls, VersionedCache
from bot.web.discussion import (
    API_VERSION,
    EncodedDiscussion,
    encode_discussion,
    load_discussion,
    reaction_summary_json,
    render_comments,
)
from bot.web.indexing import message_url, sitemap_xml
from bot.web.page import render_discussion_fragment, render_discussion_page, render_not_found_page
from bot.web.replies import BlogReplies, PosterRelay, ReplyPoster
from bot.web.server import DEFAULT_LIMITS, SERVER_NAME, GuardedSite, ServerLimits, admission_middleware
from bot.web.urls import BadUrl, canonical_post_url
from bot.web.webhooks import WebhookTuning
from bot.web.websub import add_websub_routes

log = logging.getLogger(__name__)

API_MAX_AGE = 30
EMBED_MAX_AGE = 300
MAX_COUNT_URLS = 50
PAGE_LIMIT = 200  # top-level comments (with their replies) per API answer, default and maximum
OFF_LOOP_BYTES = 256 * 1024  # a page body larger than this is joined in a thread
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class DiscordStatus:
    connected: bool
    latency_ms: float | None = None


# None: nobody reports the gateway (the web server runs without a bot attached yet).
StatusSource = Callable[[], DiscordStatus | None]

DATABASE_KEY: web.AppKey[Database] = web.AppKey("database", Database)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)
STATUS_KEY: web.AppKey[StatusSource] = web.AppKey("discord_status", object)  # type: ignore[arg-type]
EMBED_KEY: web.AppKey[bytes] = web.AppKey("embed_js", bytes)
API_CACHE_KEY: web.AppKey[VersionedCache[EncodedDiscussion]] = web.AppKey("api_cache", VersionedCache)
PAGE_CACHE_KEY: web.AppKey[VersionedCache[bytes]] = web.AppKey("page_cache", VersionedCache)
# Part of every discussion ETag: what else shapes the body (code and settings) besides the data.
ETAG_SALT_KEY: web.AppKey[str] = web.AppKey("etag_salt", str)
# Concurrent lookups of one post by URL share one query (a burst of readers of one discussion).
POST_LOOKUPS_KEY: web.AppKey[SharedCalls[tuple[str, bool], BlogPost | None]] = web.AppKey("post_lookups", SharedCalls)
HEALTH_KEY: web.AppKey[DatabaseHealth] = web.AppKey("database_health", object)  # type: ignore[arg-type]


def json_response(request: web.Request, document: Any, *, status: int = 200,
                  max_age: int = API_MAX_AGE) -> web.Response:
    """JSON with a strong ETag (a hash of the body); a matching ``If-None-Match`` gives an empty 304."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"' if status == 200 else None
    return body_response(request, body, status=status, etag=etag, max_age=max_age)


def body_response(request: web.Request, body: bytes, *, status: int = 200, etag: str | None = None,
                  max_age: int = API_MAX_AGE, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> web.Response:
    """Only a 200 may be cached; errors (404 included) say ``no-store``."""
    headers = dict(headers or {})
    headers["Cache-Control"] = f"public, max-age={max_age}" if status == 200 else "no-store"
    if etag is not None and status == 200:
        headers["ETag"] = etag
        if etag in _if_none_match(request):
            return web.Response(status=304, headers=headers)
    return web.Response(body=body, status=status, content_type=content_type, charset="utf-8",
                        headers=headers)


def not_modified(request: web.Request, etag: str) -> web.Response | None:
    """The 304 for a matching ``If-None-Match``, decided before anything is built."""
    if etag in _if_none_match(request):
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": f"public, max-age={API_MAX_AGE}"})
    return None


def _if_none_match(request: web.Request) -> set[str]:
    raw = request.headers.get("If-None-Match", "")
    if raw.strip() == "*":
        return {"*"}
    # Weak validators match too (a proxy may have weakened ours when compressing).
    return {tag.strip().removeprefix("W/") for tag in raw.split(",") if tag.strip()}


def json_error(request: web.Request, status: int, message: str) -> web.Response:
    return json_response(request, {"error": message, "status": status}, status=status)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the API only, and only for the configured origins (refused ones get no headers)."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin.lower() in request.app[SETTINGS_KEY].web_allowed_origins
    is_api = request.path.startswith("/api/") or request.path == "/auth/logout"
    if request.method == "OPTIONS" and is_api:
        if not allowed:
            return web.Response(status=403, text="origin not allowed", headers={"Vary": "Origin"})
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    if is_api:
        response.headers["Vary"] = "Origin"
        if allowed and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "If-None-Match, Authorization, Content-Type"
            response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After"
            response.headers["Access-Control-Max-Age"] = "600"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown API paths and failures answer in JSON; tracebacks go to the log only."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if request.path.startswith("/api/") and error.status >= 400:
            return json_error(request, error.status, error.reason)
        raise
    except Exception:
        log.exception("web request %s %s failed", request.method, request.path_qs)
        if request.path.startswith("/api/"):
            return json_error(request, 500, "internal error; the bot's log has the details")
        return web.Response(status=500, text="internal error", content_type="text/plain")


def _url_parameter(request: web.Request) -> str:
    values = request.query.getall("url", [])
    if not values:
        raise _BadInput("the url parameter is required: /api/v1/discussion?url=POST_URL")
    if len(values) > 1:
        raise _BadInput("give exactly one url parameter")
    try:
        return canonical_post_url(values[0])
    except BadUrl as error:
        raise _BadInput(str(error)) from None


class _BadInput(Exception):
    pass


def _public_only(request: web.Request) -> bool:
    return not request.app[SETTINGS_KEY].web_include_private


def _discussion_etag(request: web.Request, kind: str, post: BlogPost) -> str:
    return f'"{kind}{post.id}.{post.version}.{request.app[ETAG_SALT_KEY]}"'


def _page_parameters(request: web.Request) -> tuple[str | None, int]:
    raw_limit = request.query.get("limit", str(PAGE_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PAGE_LIMIT:
        raise _BadInput(f"limit must be a whole number from 1 to {PAGE_LIMIT}")
    after = request.query.get("after")
    if after is not None and not after.lstrip("-").isdigit():
        raise _BadInput("after must be a comment id from next_after")
    return after, int(raw_limit)


async def discussion_handler(request: web.Request) -> web.StreamResponse:
    try:
        url = _url_parameter(request)
        after, limit = _page_parameters(request)
        output_format = request.query.get("format", "json")
        if output_format not in ("json", "html"):
            raise _BadInput("format must be json or html")
    except _BadInput as error:
        return json_error(request, 400, str(error))
    database = request.app[DATABASE_KEY]
    public_only = _public_only(request)
    lookups = request.app[POST_LOOKUPS_KEY]
    post = await lookups.run((url, public_only), lambda: blog.post_by_url(database, url, public_only=public_only))
    if post is None and "#" in url:
        # The feed code keeps fragments, but a reader's "#comments" is not part of a post's link.
        bare = url.split("#", 1)[0]
        post = await lookups.run((bare, public_only), lambda: blog.post_by_url(database, bare, public_only=public_only))
    if post is None:
        return json_error(request, 404, "no post with this url is known to the bot")
    if output_format == "html":
        return await _fragment_response(request, post)
    etag = _discussion_etag(request, "a", post)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    found = post
    invite_url = request.app[SETTINGS_KEY].discord_invite_url

    async def build() -> EncodedDiscussion:
        discussion = await load_discussion(database, found, public_only=public_only)
        return await asyncio.to_thread(encode_discussion, discussion, invite_url=invite_url, page_limit=PAGE_LIMIT)

    encoded = await request.app[API_CACHE_KEY].get(post.id, post.version, build)
    bounds = encoded.page_bounds(after, limit)
    if bounds is None:
        return json_error(request, 400, "after is not a top-level comment of this discussion")
    if bounds != encoded.first_bounds and encoded.size > OFF_LOOP_BYTES and bounds[1] - bounds[0] > 1:
        body = await asyncio.to_thread(encoded.page, *bounds)
    else:
        body = encoded.page(*bounds)
    return body_response(request, body, etag=etag)


async def counts_handler(request: web.Request) -> web.StreamResponse:
    raw_urls = request.query.getall("url", [])
    if not raw_urls:
        return json_error(request, 400, "give at least one url parameter: /api/v1/counts?url=A&url=B")
    if len(raw_urls) > MAX_COUNT_URLS:
        return json_error(request, 400, f"at most {MAX_COUNT_URLS} url parameters per request")
    canonical: dict[str, str] = {}
    for raw in raw_urls:
        try:
            canonical[raw] = canonical_post_url(raw)
        except BadUrl as error:
            return json_error(request, 400, f"{error}: {raw[:200]}")
    database, public_only = request.app[DATABASE_KEY], _public_only(request)
    posts = await blog.posts_by_urls(database, list(canonical.values()), public_only=public_only)
    figures: dict[str, blog.ListingFigures] = {}
    for url, (post_id, version) in posts.items():

        async def build(post_id: int = post_id) -> blog.ListingFigures:
            return await blog.listing_figures(database, post_id, public_only=public_only)

        figures[url] = await request.app[LISTING_CACHE_KEY].get(post_id, version, build)
    document = {
        "counts": {raw: figures[url].comments if url in figures else 0 for raw, url in canonical.items()},
        "reactions": {raw: reaction_summary_json(figures[url].reactions.total, figures[url].reactions.top)
                      for raw, url in canonical.items() if url in figures},
        "unknown": [raw for raw, url in canonical.items() if url not in figures],
    }
    return json_response(request, document)


async def page_handler(request: web.Request) -> web.StreamResponse:
    headers = {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer"}
    database = request.app[DATABASE_KEY]
    public_only = _public_only(request)
    post = await blog.post_by_id(database, int(request.match_info["post_id"]), public_only=public_only)
    if post is None:
        return body_response(request, render_not_found_page().encode(), status=404, content_type="text/html",
                             headers=headers)
    etag = _discussion_etag(request, "p", post)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    found = post
    invite_url = request.app[SETTINGS_KEY].discord_invite_url

    async def build() -> bytes:
        discussion = await load_discussion(database, found, public_only=public_only)
        page = await asyncio.to_thread(render_discussion_page, discussion, invite_url=invite_url)
        return page.encode()

    body = await request.app[PAGE_CACHE_KEY].get(post.id, post.version, build)
    return body_response(request, body, etag=etag, content_type="text/html", headers=headers)


async def embed_handler(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[EMBED_KEY], content_type="application/javascript", charset="utf-8",
                        headers={"Cache-Control": f"public, max-age={EMBED_MAX_AGE}",
                                 "Cross-Origin-Resource-Policy": "cross-origin"})


HEALTH_STALE = 10.0  # a database that has not answered for this long counts as down
STALL_WORDS = {"locked": "locked by another process", "full": "the disk is full",
               "readonly": "the database file is read-only", "io": "disk I/O errors", "memory": "out of memory"}


class DatabaseHealth:
    """The database part of /healthz. A probe answers from the last finished check and starts a new
    one unless one is running; it never waits for it, except for the very first. Under load a check
    queues behind the API's reads on the one reader connection, and a probe that waited for it would
    measure that queue instead of the server. So feed and webhook figures show a change from the next
    probe after a check ran (one at a time, whatever the probe rate). The writer's stall is read from
    the writer's own state on every probe, so it shows at once."""

    def __init__(self, database: Database, webhook_urls: tuple[str, ...] = ()) -> None:
        self._database = database
        self._webhook_urls = webhook_urls
        self.webhooks_failing = 0  # configured webhooks that keep failing, as of the last check
        self._last: blog.FeedHealth | None = None
        self._answered_at = -math.inf
        self._pending: asyncio.Task[None] | None = None

    async def current(self) -> blog.FeedHealth | None:
        """The latest feed figures, or None when the database has not answered lately."""
        loop = asyncio.get_running_loop()
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._check(), name="web-health-check")
        if self._last is None:
            try:
                await asyncio.wait_for(asyncio.shield(self._pending), HEALTH_STALE)
            except TimeoutError:
                pass
        if loop.time() - self._answered_at > HEALTH_STALE:
            return None
        return self._last

    def writes_held_back(self) -> str | None:
        """Why the database writer holds writes back, without paths or error text; None when fine."""
        stall = self._database.stall
        if stall is None:
            return None
        kind, waiting = stall
        return f"database writes held back ({STALL_WORDS.get(kind, kind)}); {waiting} waiting"

    async def _check(self) -> None:
        try:
            self._last = await blog.feed_health(self._database)
            self.webhooks_failing = await webhook_storage.failing_count(
                self._database, self._webhook_urls, min_failures=WebhookTuning().failing_after)
            self._answered_at = asyncio.get_running_loop().time()
        except DATABASE_ERRORS:
            log.exception("health check: the database does not answer")


async def health_handler(request: web.Request) -> web.StreamResponse:
    """ok / degraded / down with counts only: which feed fails and why is for the log and /feed list
    (a public endpoint must not show feed URLs or error text)."""
    discord = request.app[STATUS_KEY]()
    feeds = await request.app[HEALTH_KEY].current()
    writes_held_back = request.app[HEALTH_KEY].writes_held_back()
    database_ok = feeds is not None and writes_held_back is None
    problems: list[str] = []
    discord_down = discord is not None and not discord.connected
    if discord_down:
        problems.append("not connected to Discord")
    if writes_held_back is not None:
        problems.append(writes_held_back)
    elif not database_ok:
        problems.append("the database does not answer")
    if feeds is not None and feeds.failing:
        problems.append(f"{feeds.failing} feed(s) failing")
    if feeds is not None and feeds.disabled:
        problems.append(f"{feeds.disabled} feed(s) disabled")
    webhook_urls = request.app[SETTINGS_KEY].webhook_urls
    webhooks_failing = request.app[HEALTH_KEY].webhooks_failing
    if webhooks_failing:
        problems.append(f"{webhooks_failing} webhook(s) failing")
    down = discord_down or not database_ok
    latency = None if discord is None else discord.latency_ms
    document = {
        "status": "down" if down else ("degraded" if problems else "ok"),
        "problems": problems,
        "discord": {"connected": None if discord is None else discord.connected,
                    "latency_ms": None if latency is None or not math.isfinite(latency) else round(latency, 1)},
        "database": {"ok": database_ok},
        "feeds": None if feeds is None else {"total": feeds.total, "failing": feeds.failing,
                                             "disabled": feeds.disabled, "paused": feeds.paused},
    }
    if webhook_urls:
        document["webhooks"] = {"total": len(webhook_urls), "failing": webhooks_failing}
    body = json.dumps(document).encode()
    return web.Response(body=body, status=503 if down else 200, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class DiscordStatusRelay:
    """The health check's view of the gateway, bound to the bot once it exists."""

    def __init__(self) -> None:
        self._source: StatusSource | None = None

    def bind(self, source: StatusSource) -> None:
        self._source = source

    def __call__(self) -> DiscordStatus | None:
        return None if self._source is None else self._source()


def load_embed_script() -> bytes:
    return resources.files("bot.web").joinpath("static/embed.js").read_bytes()


async def _hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


def create_app(database: Database, settings: Settings, discord_status: StatusSource | None = None,
               reply_poster: PosterRelay | None = None, push_receiver: PushReceiver | None = None,
               *, limits: ServerLimits = DEFAULT_LIMITS) -> web.Application:
    app = web.Application(middlewares=[admission_middleware(limits.max_in_service), cors_middleware,
                                       error_middleware])
    app[DATABASE_KEY] = database
    app[SETTINGS_KEY] = settings
    app[STATUS_KEY] = discord_status or DiscordStatusRelay()
    app[EMBED_KEY] = load_embed_script()
    api_cache: VersionedCache[EncodedDiscussion] = VersionedCache(lambda encoded: encoded.size)
    page_cache: VersionedCache[bytes] = VersionedCache(len)
    app[API_CACHE_KEY] = api_cache
    app[PAGE_CACHE_KEY] = page_cache
    salt = f"{bot.__version__}|{API_VERSION}|{settings.discord_invite_url}|{settings.web_include_private}"
    app[ETAG_SALT_KEY] = hashlib.sha256(salt.encode()).hexdigest()[:8]
    app[HEALTH_KEY] = DatabaseHealth(database, settings.webhook_urls)
    app[POST_LOOKUPS_KEY] = SharedCalls()
    app.on_response_prepare.append(_hide_server_version)
    app.router.add_get("/api/v1/discussion", discussion_handler)
    app.router.add_get("/api/v1/counts", counts_handler)
    app.router.add_get("/embed.js", embed_handler)
    app.router.add_get(r"/p/{post_id:\d{1,18}}", page_handler)
    app.router.add_get("/healthz", health_handler)
    # Replying from the blog (sign in with Discord): routes under /auth/ and /api/v1/comments.
    BlogReplies(database, settings, reply_poster or PosterRelay()).add_routes(app)
    add_blogside_routes(app)
    # WebSub callbacks of the feeds' hub subscriptions.
    add_websub_routes(app, push_receiver or PushReceiver(database, settings))
    return app


# ---------------------------------------------------------------------------------------------
# The blog side beyond the widget: the comments as an HTML fragment, Atom comment feeds, the
# sitemap of /p/ pages, reaction summaries for listing pages and counts.js. Everything is built
# from the same public-only queries as the JSON API and cached by version (a post's, or the
# site's: every post version summed) together with the base URL the answer names.

HTML_MAX_AGE = 300
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$")


@dataclass(frozen=True, slots=True)
class BuiltDocument:
    body: bytes
    last_modified: datetime | None = None


def _base_url(request: web.Request) -> str | None:
    """This server's address for absolute links in feeds and the sitemap: PUBLIC_URL when set, else as
    the client reached it (the Host header, and X-Forwarded-Proto from a TLS proxy). Each answer is
    cached under the base URL it names, so a client sending odd headers only gets odd links itself."""
    public_url = request.app[SETTINGS_KEY].public_url
    if public_url:
        return public_url.rstrip("/")
    host = request.host
    if not _HOST.match(host):
        return None
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).strip().lower()
    return f"{scheme if scheme in ('http', 'https') else request.scheme}://{host}"


def _cache_key(kind: str, key: int, base_url: str) -> int:
    return hash((kind, key, base_url))


def _versioned_etag(request: web.Request, kind: str, key: int, version: int, base_url: str = "") -> str:
    salt = hashlib.sha256(base_url.encode()).hexdigest()[:6] if base_url else "0"
    return f'"{kind}{key}.{version}.{request.app[ETAG_SALT_KEY]}.{salt}"'


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _modified_since(request: web.Request, last_modified: datetime | None) -> bool:
    """False when ``If-Modified-Since`` (and no ``If-None-Match``) covers ``last_modified``."""
    raw = request.headers.get("If-Modified-Since")
    if raw is None or last_modified is None or "If-None-Match" in request.headers:
        return True
    try:
        since = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return True
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified.replace(microsecond=0) > since


def _document_response(request: web.Request, built: BuiltDocument, etag: str, content_type: str,
                       max_age: int = API_MAX_AGE) -> web.Response:
    headers: dict[str, str] = {}
    if built.last_modified is not None:
        headers["Last-Modified"] = _http_date(built.last_modified)
    if not _modified_since(request, built.last_modified):
        headers.update({"ETag": etag, "Cache-Control": f"public, max-age={max_age}"})
        return web.Response(status=304, headers=headers)
    return body_response(request, built.body, etag=etag, max_age=max_age, content_type=content_type,
                         headers=headers)


async def _fragment_response(request: web.Request, post: BlogPost) -> web.StreamResponse:
    """``/api/v1/discussion?url=...&format=html``: the whole discussion as an HTML fragment."""
    database, public_only = request.app[DATABASE_KEY], _public_only(request)
    etag = _discussion_etag(request, "h", post)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged

    async def build() -> BuiltDocument:
        discussion = await load_discussion(database, post, public_only=public_only)
        return BuiltDocument((await asyncio.to_thread(render_discussion_fragment, discussion)).encode())

    built = await request.app[BLOGSIDE_CACHE_KEY].get(_cache_key("h", post.id, ""), post.version, build)
    return _document_response(request, built, etag, "text/html")


def _feed_entry(base_url: str, post: BlogPost, comment: BlogComment, html: str,
                message_url: str | None) -> FeedEntry:
    page_url = f"{base_url}/p/{post.id}#c{comment.message_id}"
    return FeedEntry(entry_id=page_url, title=f"{comment.author_name} on {post.title}",
                     author=comment.author_name, html=html, published=comment.created_at,
                     updated=comment.edited_at or comment.created_at, message_url=message_url,
                     post_url=post.canonical_url, page_url=page_url)


async def post_feed_handler(request: web.Request) -> web.StreamResponse:
    database, public_only = request.app[DATABASE_KEY], _public_only(request)
    base_url = _base_url(request)
    post = await blog.post_by_id(database, int(request.match_info["post_id"]), public_only=public_only)
    if post is None or base_url is None:
        return web.Response(status=404, text="no such discussion", headers={"Cache-Control": "no-store"})
    etag = _versioned_etag(request, "f", post.id, post.version, base_url)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    found, base = post, base_url

    async def build() -> BuiltDocument:
        discussion = await load_discussion(database, found, public_only=public_only)
        items = [item for top in discussion.comments for item in (top, *top.replies) if not item.comment.deleted]
        items.sort(key=lambda item: (item.comment.created_at, item.comment.message_id), reverse=True)
        entries = [_feed_entry(base, found, item.comment, item.html, message_url(found, item))
                   for item in items[:FEED_ENTRIES]]
        updated = max((entry.updated for entry in entries), default=found.published_at)
        feed = Feed(feed_id=f"{base}/p/{found.id}", title=f"Comments on {found.title}",
                    self_url=f"{base}/feeds/p/{found.id}.atom", alternate_url=f"{base}/p/{found.id}",
                    updated=updated, entries=entries)
        return BuiltDocument(await asyncio.to_thread(render_feed, feed), updated)

    built = await request.app[BLOGSIDE_CACHE_KEY].get(_cache_key("f", post.id, base_url), post.version, build)
    return _document_response(request, built, etag, ATOM_TYPE)


ATOM_TYPE = "application/atom+xml"


async def site_feed_handler(request: web.Request) -> web.StreamResponse:
    database, public_only = request.app[DATABASE_KEY], _public_only(request)
    base_url = _base_url(request)
    if base_url is None:
        return web.Response(status=400, text="bad Host header", headers={"Cache-Control": "no-store"})
    version = await blog.site_version(database)
    etag = _versioned_etag(request, "s", 0, version, base_url)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    base = base_url

    async def build() -> BuiltDocument:
        recent = await blog.recent_comments(database, limit=FEED_ENTRIES, public_only=public_only)
        rendered = await render_comments(database, [found.comment for found in recent])
        entries: list[FeedEntry] = []
        for found in recent:
            page_url = f"{base}/p/{found.post_id}#c{found.comment.message_id}"
            entries.append(FeedEntry(
                entry_id=page_url, title=f"{found.comment.author_name} on {found.post_title}",
                author=found.comment.author_name, html=rendered.get(found.comment.message_id, ""),
                published=found.comment.created_at, updated=found.comment.edited_at or found.comment.created_at,
                message_url=found.message_url, post_url=found.post_url, page_url=page_url))
        updated = max((entry.updated for entry in entries), default=datetime(2000, 1, 1, tzinfo=UTC))
        feed = Feed(feed_id=f"{base}/feeds/comments.atom", title="Comments", self_url=f"{base}/feeds/comments.atom",
                    alternate_url=None, updated=updated, entries=entries)
        return BuiltDocument(await asyncio.to_thread(render_feed, feed), updated)

    built = await request.app[BLOGSIDE_CACHE_KEY].get(_cache_key("s", 0, base_url), version, build)
    return _document_response(request, built, etag, ATOM_TYPE)


async def sitemap_handler(request: web.Request) -> web.StreamResponse:
    database, public_only = request.app[DATABASE_KEY], _public_only(request)
    base_url = _base_url(request)
    if base_url is None:
        return web.Response(status=400, text="bad Host header", headers={"Cache-Control": "no-store"})
    version = await blog.site_version(database)
    etag = _versioned_etag(request, "m", 0, version, base_url)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    base = base_url

    async def build() -> BuiltDocument:
        pages = await blog.discussions_with_comments(database, public_only=public_only)
        last = max((page.last_comment_at for page in pages), default=None)
        return BuiltDocument(await asyncio.to_thread(sitemap_xml, base, pages), last)

    built = await request.app[BLOGSIDE_CACHE_KEY].get(_cache_key("m", 0, base_url), version, build)
    return _document_response(request, built, etag, "application/xml", max_age=HTML_MAX_AGE)


async def counts_script_handler(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[COUNTS_JS_KEY], content_type="application/javascript",
                        charset="utf-8", headers={"Cache-Control": f"public, max-age={EMBED_MAX_AGE}",
                                                  "Cross-Origin-Resource-Policy": "cross-origin"})


COUNTS_JS_KEY: web.AppKey[bytes] = web.AppKey("counts_js", bytes)
BLOGSIDE_CACHE_KEY: web.AppKey[VersionedCache[BuiltDocument]] = web.AppKey("blogside_cache", VersionedCache)
LISTING_CACHE_KEY: web.AppKey[VersionedCache[blog.ListingFigures]] = web.AppKey("listing_cache", VersionedCache)


def add_blogside_routes(app: web.Application) -> None:
    app[COUNTS_JS_KEY] = resources.files("bot.web").joinpath("static/counts.js").read_bytes()
    app[BLOGSIDE_CACHE_KEY] = VersionedCache(lambda built: len(built.body))
    app[LISTING_CACHE_KEY] = VersionedCache(lambda figures: 256, budget_bytes=16 * 1024 * 1024)
    app.router.add_get("/counts.js", counts_script_handler)
    app.router.add_get("/sitemap.xml", sitemap_handler)
    app.router.add_get("/feeds/comments.atom", site_feed_handler)
    app.router.add_get(r"/feeds/p/{post_id:\d{1,18}}.atom", post_feed_handler)


class GatewayClient(Protocol):
    """What the health check needs of the bot (``bot.app.ConversationBot`` has it): whether every
    shard is connected, and the slowest shard's latency in seconds."""

    @property
    def worst_latency(self) -> float: ...

    def gateway_connected(self) -> bool: ...


class WebServer:
    """Runs the app on ``settings.web_host:settings.web_port`` next to the bot."""

    def __init__(self, database: Database, settings: Settings, discord_status: StatusSource | None = None,
                 *, port: int | None = None, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        self.discord_status = DiscordStatusRelay()
        if discord_status is not None:
            self.discord_status.bind(discord_status)
        self.reply_poster = PosterRelay()
        self.push_receiver = PushReceiver(database, settings)
        self._app = create_app(database, settings, self.discord_status, self.reply_poster, self.push_receiver,
                               limits=limits)
        self._host = settings.web_host
        self._port = settings.web_port if port is None else port
        self._limits = limits
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the web server is not running")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        if self._port is None:
            raise RuntimeError("WEB_PORT is not set")
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        site = GuardedSite(runner, self._host, self._port, self._limits)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise OSError(f"the web server cannot listen on {self._host}:{self._port} "
                          f"(WEB_HOST/WEB_PORT): {error.strerror or error}") from error
        self._runner, self._site = runner, site
        log.info("web server listening on http://%s:%s", self._host, self.port)

    def watch_bot(self, client: GatewayClient) -> None:
        """Let /healthz report ``client``'s gateway connection."""

        def status() -> DiscordStatus:
            connected = client.gateway_connected()
            latency = client.worst_latency
            return DiscordStatus(connected=connected,
                                 latency_ms=round(latency * 1000, 1) if connected and math.isfinite(latency) else None)

        self.discord_status.bind(status)

    def attach_poster(self, poster: ReplyPoster) -> None:
        """Let readers reply from the blog through ``poster`` (the bot side)."""
        self.reply_poster.bind(poster)

    def attach_announcer(self, posts_stored: PostsStored) -> None:
        """Let a WebSub push that stored posts to announce wake the announcer (the bot side)."""
        self.push_receiver.on_posts_stored = posts_stored

    async def stop(self) -> None:
        await self.push_receiver.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None
