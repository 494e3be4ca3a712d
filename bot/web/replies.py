"""Replying from the blog: sign in with Discord (OAuth2, scope ``identify``) and post into the post's thread.

The web layer never talks to the gateway: the bot hands it a :class:`ReplyPoster` at start-up (as it
hands over the gateway status), which posts a comment through the bot's webhook as the reader, or
deletes it. Sessions are opaque random tokens, kept hashed in the database, sent by the widget as
``Authorization: Bearer`` (never a cookie: no CSRF through the browser's ambient credentials) and
bound to the blog origin they were handed to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from bot.config import Settings, Tuning
from bot.storage import blog, replies
from bot.storage import comments as comment_store
from bot.storage.db import Database
from bot.web.urls import BadUrl, canonical_post_url

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(days=30)
STATE_LIFETIME_SECONDS = 600
MAX_CONTENT = 2000
MAX_BODY = 16 * 1024
OAUTH_TIMEOUT = aiohttp.ClientTimeout(total=10)
STORED_WAIT_SECONDS = 5.0  # how long a new comment's answer waits for the capture to store it
CALLBACK_PATH = "/auth/discord/callback"
SESSION_MESSAGE = "conversation-engine:session"


@dataclass(frozen=True, slots=True)
class Reader:
    """A signed-in reader: their Discord user id, display name and avatar."""

    user_id: int
    name: str
    avatar_url: str | None


class ReplyRefused(Exception):
    """Discord (or the bot's rules) will not take this comment; ``code`` is what the widget shows."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ReplyPoster(Protocol):
    """What the web server needs of the bot to reply from the blog (implemented with discord.py)."""

    @property
    def application_id(self) -> int | None:
        """The OAuth2 client id; None until the bot has logged in."""

    async def post(self, *, guild_id: int, thread_id: int, reader: Reader, content: str) -> int:
        """Post ``content`` in the thread as ``reader`` (membership, timeout and permissions checked);
        returns the message id or raises :class:`ReplyRefused`."""

    async def delete(self, *, thread_id: int, message_id: int) -> None:
        """Delete a message posted by :meth:`post`."""


class PosterRelay:
    """The poster, bound once the bot exists."""

    def __init__(self) -> None:
        self.poster: ReplyPoster | None = None

    def bind(self, poster: ReplyPoster) -> None:
        self.poster = poster


# -- OAuth2 state: signed, single-use, bound to the blog origin, ten minutes ---------------------------


class LoginStates:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"conversation-engine oauth2 state", hashlib.sha256).digest()
        self._pending: dict[str, float] = {}  # nonce -> expiry (time.time())

    def issue(self, origin: str) -> str:
        now = time.time()
        for nonce, expiry in list(self._pending.items()):
            if expiry < now:
                del self._pending[nonce]
        nonce = secrets.token_urlsafe(16)
        expiry = int(now) + STATE_LIFETIME_SECONDS
        self._pending[nonce] = expiry
        payload = f"{nonce}.{expiry}.{base64.urlsafe_b64encode(origin.encode()).decode().rstrip('=')}"
        return f"{payload}.{self._sign(payload)}"

    def redeem(self, state: str) -> str | None:
        """The origin the state was issued for, once; None when forged, expired or used."""
        payload, _, signature = state.rpartition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        nonce, expiry, encoded = (payload.split(".") + ["", ""])[:3]
        if self._pending.pop(nonce, None) is None or int(expiry) < time.time():
            return None
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


# -- rate limits --------------------------------------------------------------------------------------


class RateLimits:
    """Sliding windows in memory: a restart forgets them, which is harmless at these sizes."""

    def __init__(self, tuning: Tuning) -> None:
        self._interval = tuning.reply_interval_seconds
        self._per_hour = tuning.replies_per_hour
        self._per_minute = tuning.replies_per_address_per_minute
        self._users: dict[int, deque[float]] = {}
        self._addresses: dict[str, deque[float]] = {}

    def retry_after(self, user_id: int, address: str) -> float | None:
        """Seconds until this reader (from this address) may post again; None when they may now."""
        now = time.monotonic()
        waits: list[float] = []
        user = self._prune(self._users, user_id, 3600.0, now)
        if user and now - user[-1] < self._interval:
            waits.append(self._interval - (now - user[-1]))
        if len(user) >= self._per_hour:
            waits.append(3600.0 - (now - user[-self._per_hour]))
        seen = self._prune(self._addresses, address, 60.0, now)
        if len(seen) >= self._per_minute:
            waits.append(60.0 - (now - seen[-self._per_minute]))
        return max(waits) if waits else None

    def record(self, user_id: int, address: str) -> None:
        now = time.monotonic()
        self._users.setdefault(user_id, deque()).append(now)
        self._addresses.setdefault(address, deque()).append(now)

    @staticmethod
    def _prune(table: dict[Any, deque[float]], key: Any, window: float, now: float) -> deque[float]:
        times = table.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= window:
            times.popleft()
        if not times:
            del table[key]
        return times


# -- the handlers -------------------------------------------------------------------------------------


class BlogReplies:
    """The routes of replying from the blog; mounted by :func:`bot.web.app.create_app`."""

    def __init__(self, database: Database, settings: Settings, relay: PosterRelay) -> None:
        self._database = database
        self._settings = settings
        self._relay = relay
        self._states = LoginStates(settings.discord_client_secret or secrets.token_hex(16))
        self._rate = RateLimits(settings.tuning)
        parts = urlsplit(settings.discord_api_base)
        # https://discord.com/api/v10 -> https://discord.com/oauth2/authorize (the emulator's likewise)
        self._authorize_url = f"{parts.scheme}://{parts.netloc}/oauth2/authorize"
        self._redirect_uri = f"{settings.public_url}{CALLBACK_PATH}"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/auth/discord/login", self.login)
        app.router.add_get(CALLBACK_PATH, self.callback)
        app.router.add_post("/auth/logout", self.logout)
        app.router.add_get("/api/v1/replying", self.replying)
        app.router.add_post("/api/v1/comments", self.post_comment)
        app.router.add_delete(r"/api/v1/comments/{message_id:\d{1,20}}", self.delete_comment)

    async def replying(self, request: web.Request) -> web.StreamResponse:
        """Whether the widget offers "Sign in with Discord to reply" (both settings given)."""
        return web.json_response({"enabled": self._settings.replying_enabled, "max_length": MAX_CONTENT},
                                 headers={"Cache-Control": "public, max-age=300"})

    # -- sign in ------------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not self._settings.replying_enabled:
            return _page("Replying from the blog is off", "Ask the blog's owner to set it up.", status=404)
        origin = request.query.get("origin", "").lower().rstrip("/")
        if origin not in self._settings.web_allowed_origins:
            return _page("Unknown blog", "This blog is not one the bot serves (WEB_ALLOWED_ORIGINS).", status=400)
        poster = self._relay.poster
        client_id = None if poster is None else poster.application_id
        if client_id is None:
            return _page("Not ready", "The bot is starting; try again in a minute.", status=503)
        query = urlencode({"client_id": str(client_id), "response_type": "code", "scope": "identify",
                           "redirect_uri": self._redirect_uri, "state": self._states.issue(origin),
                           "prompt": "none"})
        raise web.HTTPFound(f"{self._authorize_url}?{query}", headers={"Cache-Control": "no-store",
                                                                        "Referrer-Policy": "no-referrer"})

    async def callback(self, request: web.Request) -> web.StreamResponse:
        if not self._settings.replying_enabled:
            return _page("Replying from the blog is off", "Ask the blog's owner to set it up.", status=404)
        origin = self._states.redeem(request.query.get("state", ""))
        if origin is None or origin not in self._settings.web_allowed_origins:
            return _page("Sign-in expired", "This sign-in link is not valid (or was used already); "
                         "close this window and sign in again from the blog.", status=400)
        code = request.query.get("code")
        if not code:
            return _handoff(origin, {"type": SESSION_MESSAGE, "error": "Sign-in was cancelled."})
        try:
            reader = await self._identify(code)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as error:
            log.warning("sign in with Discord failed: %s", error)
            return _handoff(origin, {"type": SESSION_MESSAGE, "error": "Discord did not confirm the sign-in; "
                                                                       "try again."})
        token = secrets.token_urlsafe(32)
        await replies.open_session(self._database, token, user_id=reader.user_id, user_name=reader.name,
                                   avatar_url=reader.avatar_url, origin=origin, lifetime=SESSION_LIFETIME)
        log.info("reader %s signed in for %s", reader.user_id, origin)
        return _handoff(origin, {"type": SESSION_MESSAGE, "token": token,
                                 "user": {"id": str(reader.user_id), "name": reader.name,
                                          "avatar_url": reader.avatar_url}})

    async def _identify(self, code: str) -> Reader:
        """Exchange the code, read who signed in, and forget Discord's token."""
        poster = self._relay.poster
        client_id = None if poster is None else poster.application_id
        api = self._settings.discord_api_base
        async with aiohttp.ClientSession(timeout=OAUTH_TIMEOUT) as session:
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self._redirect_uri,
                    "client_id": str(client_id), "client_secret": self._settings.discord_client_secret or ""}
            async with session.post(f"{api}/oauth2/token", data=form) as response:
                if response.status != 200:
                    raise ValueError(f"the token exchange answered {response.status}")
                grant = await response.json()
            access_token = str(grant["access_token"])
            async with session.get(f"{api}/users/@me",
                                   headers={"Authorization": f"Bearer {access_token}"}) as response:
                if response.status != 200:
                    raise ValueError(f"/users/@me answered {response.status}")
                user = await response.json()
        user_id = int(user["id"])
        avatar = user.get("avatar")
        return Reader(user_id=user_id, name=str(user.get("global_name") or user["username"]),
                      avatar_url=f"https://cdn.discordapp.com/avatars/{user_id}/{avatar}.png" if avatar else None)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = _bearer(request)
        if token is not None:
            await replies.revoke_session(self._database, token)
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    # -- comments -----------------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> replies.WebSession:
        token = _bearer(request)
        session = None if token is None else await replies.find_session(self._database, token)
        if session is None:
            raise ReplyRefused(401, "signed_out", "You are signed out; sign in with Discord again.")
        if request.headers.get("Origin", "").lower() != session.origin:
            raise ReplyRefused(403, "wrong_origin", "This sign-in belongs to another site.")
        return session

    async def post_comment(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._post_comment(request)
        except ReplyRefused as refusal:
            return _refusal(refusal)

    async def _post_comment(self, request: web.Request) -> web.StreamResponse:
        if not self._settings.replying_enabled:
            raise ReplyRefused(404, "off", "Replying from the blog is off.")
        session = await self._session(request)
        document = await _json_body(request)
        raw_url, content, reply_to = document.get("url"), document.get("content"), document.get("reply_to")
        if not isinstance(raw_url, str) or not isinstance(content, str):
            raise ReplyRefused(400, "bad_request", "Give the post's url and the comment's content.")
        content = content.strip()
        if not 1 <= len(content) <= MAX_CONTENT:
            raise ReplyRefused(400, "length", f"A comment has 1 to {MAX_CONTENT} characters.")
        try:
            url = canonical_post_url(raw_url)
        except BadUrl as error:
            raise ReplyRefused(400, "bad_request", str(error)) from None
        post = await blog.post_by_url(self._database, url, public_only=not self._settings.web_include_private)
        if post is None or post.thread_id is None or post.thread_guild_id is None:
            raise ReplyRefused(404, "no_thread", "This post has no discussion on Discord yet.")
        if post.thread_locked:
            raise ReplyRefused(403, "locked", "This discussion is locked; no new comments.")
        if await comment_store.is_opted_out(self._database, session.user_id):
            raise ReplyRefused(403, "opted_out", "You opted out of showing your comments on the blog "
                                                 "(/privacy in Discord); opt in again to reply here.")
        answered = None
        if reply_to is not None:
            answered = await comment_store.get_comment(self._database, _comment_id(reply_to))
            if answered is None or answered.post_id != post.id or answered.deleted_at is not None:
                raise ReplyRefused(400, "bad_request", "The comment you reply to is not in this discussion.")
        address = _client_address(request)
        wait = self._rate.retry_after(session.user_id, address)
        if wait is not None:
            raise ReplyRefused(429, "rate_limited", f"Too many comments; try again in {int(wait) + 1} s.",
                               retry_after=wait)
        poster = self._relay.poster
        if poster is None:
            raise ReplyRefused(503, "unavailable", "The bot is not connected to Discord; try again soon.")
        reader = Reader(user_id=session.user_id, name=session.user_name, avatar_url=session.avatar_url)
        text = content
        if answered is not None:
            # Webhooks cannot send Discord replies: the message links the one it answers.
            link = f"https://discord.com/channels/{post.thread_guild_id}/{post.thread_id}/{answered.message_id}"
            text = f"-# ↪ replying to {_escape(answered.author_name or 'a comment')}: {link}\n{content}"
            if len(text) > MAX_CONTENT:
                raise ReplyRefused(400, "length", f"A reply has at most {MAX_CONTENT - len(text) + len(content)} "
                                                  "characters.")
        self._rate.record(session.user_id, address)
        message_id = await poster.post(guild_id=post.thread_guild_id, thread_id=post.thread_id, reader=reader,
                                       content=text)
        await replies.record_blog_reply(
            self._database, message_id=message_id, thread_id=post.thread_id, author_id=reader.user_id,
            author_name=reader.name, author_avatar_url=reader.avatar_url,
            reply_to=None if answered is None else answered.message_id)
        log.info("reader %s commented on post %s from the blog (message %s)", reader.user_id, post.id, message_id)
        return web.json_response(await self._stored_comment(post, message_id), status=201,
                                 headers={"Cache-Control": "no-store"})

    async def _stored_comment(self, post: blog.BlogPost, message_id: int) -> dict[str, Any]:
        """The comment as the discussion API shows it, once the capture stored it."""
        from bot.web.discussion import comment_json, load_discussion

        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORED_WAIT_SECONDS
        while loop.time() < deadline:
            stored = await comment_store.get_comment(self._database, message_id)
            if stored is not None and stored.author_id is not None and not stored.is_bot:
                break
            await asyncio.sleep(0.05)
        discussion = await load_discussion(self._database, post, public_only=False)
        for top in discussion.comments:
            for item, nested in ((top, False), *((reply, True) for reply in top.replies)):
                if item.comment.message_id == message_id:
                    return comment_json(item, nested=nested)
        return {"id": str(message_id), "pending": True}

    async def delete_comment(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._settings.replying_enabled:
                raise ReplyRefused(404, "off", "Replying from the blog is off.")
            session = await self._session(request)
            message_id = int(request.match_info["message_id"])
            found = await replies.blog_reply_author(self._database, message_id)
            if found is None or found[0] != session.user_id:
                raise ReplyRefused(403, "not_yours", "Only comments you posted from the blog can be deleted here.")
            poster = self._relay.poster
            if poster is None:
                raise ReplyRefused(503, "unavailable", "The bot is not connected to Discord; try again soon.")
            await poster.delete(thread_id=found[1], message_id=message_id)
        except ReplyRefused as refusal:
            return _refusal(refusal)
        log.info("reader %s deleted their comment %s from the blog", session.user_id, message_id)
        return web.Response(status=204, headers={"Cache-Control": "no-store"})


def _comment_id(value: object) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    raise ReplyRefused(400, "bad_request", "reply_to must be a comment id (a string of digits).")


def _escape(name: str) -> str:
    return "".join("\\" + ch if ch in "*_~`|>[]()\\<@#" else ch for ch in name)[:80]


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ReplyRefused(413, "bad_request", "The request is too large.")
    try:
        raw = await request.content.read(MAX_BODY + 1)
        document = json.loads(raw) if len(raw) <= MAX_BODY else None
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        raise ReplyRefused(400, "bad_request", "Send a JSON object: {\"url\": ..., \"content\": ...}.")
    return document


def _client_address(request: web.Request) -> str:
    """The reader's address: behind a reverse proxy on this machine (the usual set-up, WEB_HOST=127.0.0.1)
    the nearest entry of X-Forwarded-For, which that proxy wrote; never trusted from anyone else."""
    remote = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and (remote.startswith("127.") or remote == "::1"):
        return forwarded.split(",")[-1].strip() or remote
    return remote


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _refusal(refusal: ReplyRefused) -> web.StreamResponse:
    body: dict[str, Any] = {"error": refusal.message, "status": refusal.status, "code": refusal.code}
    headers = {"Cache-Control": "no-store"}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(int(refusal.retry_after) + 1)
        body["retry_after"] = int(refusal.retry_after) + 1
    return web.json_response(body, status=refusal.status, headers=headers)


def _page(title: str, text: str, *, status: int = 200, script: str = "") -> web.Response:
    nonce = secrets.token_urlsafe(12)
    body = (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{_html(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<body style="font-family:system-ui,sans-serif;margin:2em"><h1>{_html(title)}</h1>'
            f'<p role="status">{_html(text)}</p>'
            + (f'<script nonce="{nonce}">{script}</script>' if script else "") + "</body></html>")
    return web.Response(text=body, status=status, content_type="text/html", headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
                                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"})


def _handoff(origin: str, message: dict[str, Any]) -> web.Response:
    """The popup's last page: hands the message to the blog page that opened it (only to that origin)."""
    data = json.dumps(message).replace("<", "\\u003c")
    target = json.dumps(origin).replace("<", "\\u003c")
    script = (f"if (window.opener) {{ window.opener.postMessage({data}, {target}); }} window.close();")
    done = "error" not in message
    return _page("Signed in" if done else "Not signed in",
                 "You can close this window and go back to the blog." if done else str(message["error"]),
                 script=script)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
