"""A WebSub hub for the tests (a real aiohttp server on 127.0.0.1): it takes subscription requests,
verifies them against the subscriber's callback as a hub does (GET with a random challenge, which
must come back), and publishes signed content to the verified callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from html import escape

import aiohttp
from aiohttp import web

from tests.feeds_support import Item, rss_document


@dataclass
class HubRequest:
    """One subscription request the hub received, and how its verification went."""

    form: dict[str, str]
    verified: bool | None = None  # None: not verified (yet)
    verification_status: int | None = None

    @property
    def mode(self) -> str:
        return self.form.get("hub.mode", "")

    @property
    def callback(self) -> str:
        return self.form.get("hub.callback", "")


@dataclass
class TestHub:
    """``await hub.start()``; subscriptions verified at once unless ``verify`` is False."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    answer_status: int = 202
    verify: bool = True
    lease_override: int | None = None  # the lease the hub grants instead of the one asked for
    requests: list[HubRequest] = field(default_factory=list)
    subscribers: dict[str, tuple[str, str]] = field(default_factory=dict)  # callback -> (topic, secret)
    port: int = 0
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> TestHub:
        app = web.Application()
        app.router.add_post("/hub", self._subscribe)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub"

    def of_mode(self, mode: str) -> list[HubRequest]:
        return [request for request in self.requests if request.mode == mode]

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        form = {key: str(value) for key, value in (await request.post()).items()}
        seen = HubRequest(form)
        self.requests.append(seen)
        if self.answer_status < 300 and self.verify:
            task = asyncio.create_task(self._verify_later(seen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=self.answer_status, text="" if self.answer_status < 300 else "hub is broken")

    async def _verify_later(self, seen: HubRequest) -> None:
        await asyncio.sleep(0.05)  # a hub verifies after it answered the request
        lease = self.lease_override if self.lease_override is not None else int(seen.form.get("hub.lease_seconds", 0))
        status, ok = await self.verification(seen.callback, seen.mode, seen.form.get("hub.topic", ""), lease)
        seen.verification_status, seen.verified = status, ok
        if ok and seen.mode == "subscribe":
            self.subscribers[seen.callback] = (seen.form["hub.topic"], seen.form.get("hub.secret", ""))
        elif ok:
            self.subscribers.pop(seen.callback, None)

    async def verification(self, callback: str, mode: str, topic: str, lease: int = 0) -> tuple[int, bool]:
        """A verification GET as a hub sends it: (status, whether the challenge came back)."""
        assert self._http is not None
        challenge = secrets.token_hex(16)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        async with self._http.get(callback, params=params) as response:
            body = await response.text()
            return response.status, response.status == 200 and body == challenge

    async def publish(self, topic: str, body: bytes, *, secret: str | None = None, signature: str | None = None,
                      algorithm: str = "sha256", content_type: str = "application/rss+xml") -> list[int]:
        """POST ``body`` to every verified subscriber of ``topic``, signed with its secret (or with
        ``secret``, or with the ``signature`` header given: "" sends none); the statuses."""
        assert self._http is not None
        statuses = []
        for callback, (subscribed_topic, subscriber_secret) in list(self.subscribers.items()):
            if subscribed_topic != topic:
                continue
            headers = {"Content-Type": content_type}
            if signature is None:
                key = (secret if secret is not None else subscriber_secret).encode()
                digest = hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()
                headers["X-Hub-Signature"] = f"{algorithm}={digest}"
            elif signature:
                headers["X-Hub-Signature"] = signature
            async with self._http.post(callback, data=body, headers=headers) as response:
                statuses.append(response.status)
        return statuses


def rss_with_hub(items: list[Item], *, hub: str | None, self_url: str | None, title: str = "Pushed Blog") -> bytes:
    """An RSS document advertising a WebSub hub and its own address the way blogs do (atom:link)."""
    links = ""
    if hub is not None:
        links += f'<atom:link rel="hub" href="{escape(hub)}"/>'
    if self_url is not None:
        links += f'<atom:link rel="self" href="{escape(self_url)}" type="application/rss+xml"/>'
    document = rss_document(items, title=title).decode()
    document = document.replace('<rss version="2.0"><channel>',
                                f'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>{links}', 1)
    return document.encode()
