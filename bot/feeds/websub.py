"""WebSub (PubSubHubbub 0.4): subscribing to the hubs feeds advertise, and taking their pushes.

* :class:`WebSubManager` (run by the bot's loop) asks hubs: subscribe when a poll found a hub,
  renew once ``websub_renew_after`` of the lease has passed, retry failures with a doubling wait,
  unsubscribe removed feeds. Requests go through the feed session and the feed fetcher's address
  rules (public addresses only unless ALLOW_PRIVATE_FEEDS).
* :class:`PushReceiver` (used by the web server's ``/websub/<token>`` routes) answers the hub's
  verification only for the request awaiting it, with the subscription's topic, and takes content
  notifications signed with the subscription's secret: answered at once, parsed in the background
  like a fetched document and stored through the poll's own store path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from bot.config import Settings
from bot.feeds.errors import FeedError
from bot.feeds.fetch import FetchTimeouts, post_form
from bot.feeds.parse import parse_feed_in_worker
from bot.feeds.scheduler import store_pushed
from bot.storage import websub as websub_store
from bot.storage.db import Database, utcnow
from bot.storage.websub import Mode, Subscription

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_RETRY_SECONDS = 86_400.0
UNSUBSCRIBE_ATTEMPTS = 3  # a hub that never confirms an unsubscription is asked this often, then forgotten
MAX_PUSH_BYTES = 4 * 1024 * 1024
MAX_QUEUED_PUSHES = 32  # notifications being parsed or waiting to be; more are dropped (the poll catches up)
_SIGNATURE_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
                         "sha512": hashlib.sha512}


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/websub/{token}"


class WebSubManager:
    """Asks hubs for what the stored subscriptions need; :meth:`run_due` once per tick."""

    def __init__(self, database: Database, session: aiohttp.ClientSession, settings: Settings, *,
                 clock: Clock = utcnow, timeouts: FetchTimeouts | None = None) -> None:
        self.database = database
        self.session = session
        self.settings = settings
        self.clock = clock
        self.timeouts = timeouts

    async def run_due(self) -> int:
        """Act on every subscription whose time came; one's failure never stops the others.
        Returns how many were looked at."""
        if not self.settings.websub_enabled:
            return 0
        due = await websub_store.due(self.database, self.clock())
        for subscription in due:
            try:
                await self._act(subscription)
            except Exception:  # one broken subscription must not stop the others
                log.exception("WebSub: looking after subscription %d (%s) failed", subscription.id,
                              subscription.topic_url)
        return len(due)

    async def _act(self, subscription: Subscription) -> None:
        now = self.clock()
        if subscription.state == "unsubscribing":
            unconfirmed = subscription.requested_mode is not None  # asked, and the hub did not verify in time
            if subscription.attempts + int(unconfirmed) >= UNSUBSCRIBE_ATTEMPTS:
                log.info("WebSub: %s did not confirm the unsubscription of %s; forgetting it",
                         subscription.hub_url, subscription.topic_url)
                await websub_store.forget(self.database, subscription.id)
            elif unconfirmed:
                await self._failed(subscription, "the hub did not confirm the unsubscription", now)
            else:
                await self._request(subscription, "unsubscribe", now)
            return
        if subscription.requested_mode is not None:  # the hub had its time to verify and did not
            wait = self.settings.tuning.websub_verify_wait_seconds
            await self._failed(subscription, f"the hub did not confirm the subscription within {wait:g} s", now)
            return
        if subscription.state == "live" and subscription.expires_at is not None and subscription.expires_at <= now:
            await websub_store.lapse(self.database, subscription.id, now=now, reason="the lease ended")
            return
        await self._request(subscription, "subscribe", now)  # wanted, failed (retry) or live (renewal)

    async def _request(self, subscription: Subscription, mode: Mode, now: datetime) -> None:
        tuning = self.settings.tuning
        public_url = self.settings.public_url
        assert public_url is not None  # websub_enabled
        lease = int(tuning.websub_lease_seconds)
        await websub_store.mark_requested(
            self.database, subscription.id, mode, now=now, lease_seconds=lease,
            verify_by=now + timedelta(seconds=tuning.websub_verify_wait_seconds))
        form = {"hub.mode": mode, "hub.topic": subscription.topic_url,
                "hub.callback": callback_url(public_url, subscription.token)}
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(lease)
            form["hub.secret"] = subscription.secret
        try:
            answer = await post_form(self.session, subscription.hub_url, form,
                                     allow_private=self.settings.allow_private_feeds, timeouts=self.timeouts)
        except FeedError as error:
            await self._failed(subscription, f"could not reach the hub: {error.message}", self.clock())
            return
        if not 200 <= answer.status < 300:
            said = " ".join(answer.text.split())[:200]
            await self._failed(subscription, f"the hub answered HTTP {answer.status}" + (f": {said}" if said else ""),
                               self.clock())
            return
        log.info("WebSub: asked %s to %s %s (HTTP %d); waiting for its verification", subscription.hub_url, mode,
                 subscription.topic_url, answer.status)

    async def _failed(self, subscription: Subscription, reason: str, now: datetime) -> None:
        tuning = self.settings.tuning
        wait = min(tuning.websub_retry_first_seconds * 2 ** min(subscription.attempts, 20), MAX_RETRY_SECONDS)
        if subscription.state == "live" and subscription.expires_at is not None:
            # A failed renewal is tried again before the lease ends, not a day later.
            wait = min(wait, max(1.0, (subscription.expires_at - now).total_seconds() / 2))
        await websub_store.record_failure(self.database, subscription.id, reason, now=now,
                                          retry_at=now + timedelta(seconds=wait))
        log.info("WebSub: %s for %s: %s", subscription.hub_url, subscription.topic_url, reason)


@dataclass(frozen=True, slots=True)
class Verification:
    """The query of a hub's verification request (GET on the callback)."""

    mode: str
    topic: str
    challenge: str
    lease_seconds: int | None = None
    reason: str = ""


def valid_signature(header: str | None, secret: str, body: bytes) -> bool:
    """Whether ``X-Hub-Signature`` (``sha256=<hex>``, or sha1/sha384/sha512) is the HMAC of ``body``
    with ``secret`` (compared in constant time)."""
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = _SIGNATURE_ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


PostsStored = Callable[[], None]


class PushReceiver:
    """The bot's side of the callback, for the web server (no Discord in here).

    ``on_posts_stored`` is called after a push stored posts to announce (the bot binds its
    announcer's wake-up); pushes are processed in background tasks, :meth:`close` ends them."""

    def __init__(self, database: Database, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.on_posts_stored: PostsStored | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def verify(self, token: str, query: Verification) -> str | None:
        """The challenge to echo for a verification the bot is waiting for, else None (404)."""
        if query.mode not in ("subscribe", "unsubscribe") or not query.challenge:
            return None
        mode: Mode = "subscribe" if query.mode == "subscribe" else "unsubscribe"
        verified = await websub_store.verify(self.database, token, mode=mode, topic_url=query.topic,
                                             lease_seconds=query.lease_seconds, now=self.clock(),
                                             renew_after=self.settings.tuning.websub_renew_after)
        if verified is None:
            log.info("WebSub: refused a %s verification for an unknown callback or topic (%s)", query.mode,
                     query.topic[:200])
            return None
        if mode == "subscribe":
            log.info("WebSub: subscription to %s at %s is live until %s", query.topic, verified.subscription.hub_url,
                     verified.expires_at)
        else:
            log.info("WebSub: unsubscribed from %s at %s", query.topic, verified.subscription.hub_url)
        return query.challenge

    async def denied(self, token: str, query: Verification) -> bool:
        """The hub refused the subscription; recorded as its failure (retried later)."""
        now = self.clock()
        reason = " ".join(query.reason.split())[:200] or "no reason given"
        retry = now + timedelta(seconds=self.settings.tuning.websub_retry_first_seconds)
        found = await websub_store.deny(self.database, token, topic_url=query.topic,
                                        reason=f"the hub refused the subscription: {reason}", now=now,
                                        retry_at=retry)
        if found:
            log.info("WebSub: the hub refused the subscription to %s: %s", query.topic, reason)
        return found

    async def notify(self, token: str, body: bytes, signature: str | None, content_type: str | None) -> bool:
        """A content notification: taken (processed in the background) only when it is signed with
        the subscription's secret. False when it was not taken (the caller answers 202 all the same,
        as the spec asks, so a forger learns nothing)."""
        subscription = await websub_store.by_token(self.database, token)
        if subscription is None or subscription.feed_id is None or subscription.state == "unsubscribing":
            log.info("WebSub: ignored a notification for an unknown or ended subscription")
            return False
        if not valid_signature(signature, subscription.secret, body):
            log.info("WebSub: ignored a notification for %s with a %s signature", subscription.topic_url,
                     "missing" if not signature else "wrong")
            return False
        if len(self._tasks) >= MAX_QUEUED_PUSHES:
            log.warning("WebSub: %d notifications are being processed; dropped one for %s (the next poll "
                        "reads the feed)", len(self._tasks), subscription.topic_url)
            return False
        task = asyncio.create_task(self._process(subscription, body, content_type), name="websub-push")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _process(self, subscription: Subscription, body: bytes, content_type: str | None) -> None:
        assert subscription.feed_id is not None
        now = self.clock()
        try:
            parsed = await parse_feed_in_worker(body, url=subscription.topic_url, content_type=content_type, now=now)
            outcome = await store_pushed(self.database, subscription.feed_id, parsed, now)
            await websub_store.record_push(self.database, subscription.id, now)
        except FeedError as error:
            log.info("WebSub: a notification for %s could not be read: %s", subscription.topic_url, error.message)
            return
        except Exception:  # a background task: logged here or never
            log.exception("WebSub: storing a notification for %s failed", subscription.topic_url)
            return
        log.info("WebSub: notification for %s: %d new post(s), %d to announce", subscription.topic_url,
                 outcome.new_posts, outcome.queued)
        if outcome.queued and self.on_posts_stored is not None:
            self.on_posts_stored()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def subscriptions_for_guild(database: Database, guild_id: int) -> dict[int, Subscription]:
    """What ``/feed list`` shows about push, by feed id."""
    return await websub_store.for_guild(database, guild_id)
