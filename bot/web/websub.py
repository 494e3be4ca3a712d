"""The WebSub callback, ``/websub/<token>``: the hub's verification (GET) and its content
notifications (POST). What they mean for the subscriptions is :mod:`bot.feeds.websub`'s business.

Verification: the challenge is echoed (200, text/plain) only for a request the bot is waiting for,
with the subscription's topic; anything else is a 404. Notifications are answered 202 at once,
whether or not their signature holds (the spec's advice: a forger learns nothing); only signed
ones are processed, in the background. Bodies over ``MAX_PUSH_BYTES`` get a 413.
"""

from __future__ import annotations

from aiohttp import web

from bot.feeds.websub import MAX_PUSH_BYTES, PushReceiver, Verification

RECEIVER_KEY: web.AppKey[PushReceiver] = web.AppKey("websub_receiver", PushReceiver)
_TOKEN = r"{token:[A-Za-z0-9_-]{16,128}}"
_NO_STORE = {"Cache-Control": "no-store"}


def add_websub_routes(app: web.Application, receiver: PushReceiver) -> None:
    app[RECEIVER_KEY] = receiver
    app.router.add_get(f"/websub/{_TOKEN}", verification_handler)
    app.router.add_post(f"/websub/{_TOKEN}", notification_handler)


def _not_found() -> web.Response:
    return web.Response(status=404, text="no such subscription", content_type="text/plain", headers=_NO_STORE)


async def verification_handler(request: web.Request) -> web.StreamResponse:
    query = request.query
    lease = query.get("hub.lease_seconds", "")
    verification = Verification(
        mode=query.get("hub.mode", ""), topic=query.get("hub.topic", ""), challenge=query.get("hub.challenge", ""),
        lease_seconds=int(lease) if lease.isdigit() and len(lease) <= 10 else None,
        reason=query.get("hub.reason", ""))
    receiver = request.app[RECEIVER_KEY]
    token = request.match_info["token"]
    if verification.mode == "denied":
        if await receiver.denied(token, verification):
            return web.Response(status=200, text="", content_type="text/plain", headers=_NO_STORE)
        return _not_found()
    challenge = await receiver.verify(token, verification)
    if challenge is None:
        return _not_found()
    return web.Response(status=200, text=challenge, content_type="text/plain", headers=_NO_STORE)


async def notification_handler(request: web.Request) -> web.StreamResponse:
    declared = request.content_length
    if declared is not None and declared > MAX_PUSH_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_PUSH_BYTES, actual_size=declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_PUSH_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_PUSH_BYTES, actual_size=size)
        chunks.append(chunk)
    await request.app[RECEIVER_KEY].notify(request.match_info["token"], b"".join(chunks),
                                           request.headers.get("X-Hub-Signature"), request.headers.get("Content-Type"))
    return web.Response(status=202, text="", content_type="text/plain", headers=_NO_STORE)
