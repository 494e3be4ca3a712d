"""Webhooks for blog owners: each new comment, edit, delete and new post thread is POSTed as JSON
to every ``WEBHOOK_URLS`` entry, signed with ``WEBHOOK_SECRET``.

The events come from the outbox that triggers fill in the same transaction as the change
(migration 0006), so capturing a comment costs no Python and nothing is lost across restarts. Per
URL one task delivers the events in order, one at a time, retrying a failing one with a doubling
backoff for 24 h before giving it up. Receivers may get an event twice (a restart mid-delivery):
``id`` identifies it. The SSRF guard of the feed code applies: private addresses only with
``ALLOW_PRIVATE_WEBHOOKS=true``; redirects are not followed.

Who may see a comment is checked when its event is delivered (hidden, opted out, private channel:
no event); a delete event names the comment and carries none of its content.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.config import Settings
from bot.feeds.fetch import USER_AGENT, GuardedResolver, PrivateAddressError, is_public_address
from bot.storage import blog
from bot.storage import webhooks as outbox
from bot.storage.db import Database
from bot.storage.webhooks import OutboxEvent
from bot.web.discussion import render_comments, safe_url

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Conversation-Signature"
EVENT_HEADER = "X-Conversation-Event"
DELIVERY_HEADER = "X-Conversation-Delivery"


@dataclass(frozen=True, slots=True)
class WebhookTuning:
    poll_seconds: float = 1.0  # how often an idle URL looks for new events
    timeout_seconds: float = 10.0
    retry_first_seconds: float = 10.0
    retry_longest_seconds: float = 3600.0
    give_up_after_seconds: float = 86_400.0
    failing_after: int = 3  # consecutive failures before the log and /healthz call a URL failing


def signature(secret: str, body: bytes) -> str:
    """The ``X-Conversation-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def label(url: str) -> str:
    """How the log names a webhook: its host only (the path may hold a token)."""
    return urlsplit(url).hostname or "?"


def _private_literal(url: str) -> str | None:
    """An IP-literal host that is not public (aiohttp does not ask the resolver about those)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public_address(host) else host


class WebhookDispatcher:
    """Delivers the outbox to the configured URLs until stopped."""

    def __init__(self, database: Database, settings: Settings, *, tuning: WebhookTuning = WebhookTuning()) -> None:
        self._database = database
        self._settings = settings
        self._tuning = tuning
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Sync the stored targets with ``WEBHOOK_URLS`` (also when there are none: the outbox is then
        emptied and stays empty) and start one delivery task per URL."""
        urls = self._settings.webhook_urls
        await self._database.write(outbox.sync_targets(urls))
        if not urls:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=self._settings.allow_private_webhooks),
                                           use_dns_cache=False, limit_per_host=1),
            timeout=aiohttp.ClientTimeout(total=self._tuning.timeout_seconds),
            headers={"User-Agent": USER_AGENT})
        self._tasks = [asyncio.create_task(self._deliver_forever(url), name=f"webhook-{label(url)}")
                       for url in urls]
        log.info("webhooks: delivering to %d URL(s)", len(urls))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver_forever(self, url: str) -> None:
        while True:
            try:
                wait = await self._step(url)
            except Exception:  # a database problem, say: log, wait, go on (the loop must not die)
                log.exception("webhook %s: delivery step failed", label(url))
                wait = max(self._tuning.poll_seconds, 5.0)
            if wait > 0:
                await asyncio.sleep(wait)

    async def _step(self, url: str) -> float:
        """Try the URL's next event; returns how long to wait before the next step."""
        target = await outbox.target(self._database, url)
        if target is None:
            return self._tuning.poll_seconds
        event = await outbox.next_event(self._database, target.delivered_up_to)
        if event is None:
            return self._tuning.poll_seconds
        now = datetime.now(UTC)
        if target.next_attempt_at is not None and target.next_attempt_at > now:
            return min((target.next_attempt_at - now).total_seconds(), 60.0)
        document = await self._document(event)
        if document is None:  # not for the blog's eyes (or gone): nothing to send
            await self._database.write(outbox.mark_done(url, event.id))
            return 0.0
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        problem = await self._post(url, event, body)
        if problem is None:
            await self._database.write(outbox.mark_done(url, event.id))
            if target.failures >= self._tuning.failing_after:
                log.info("webhook %s: delivering again after %d failed attempts", label(url), target.failures)
            return 0.0
        first_failed = target.first_failed_at or now
        failures = target.failures + 1
        if (now - first_failed).total_seconds() >= self._tuning.give_up_after_seconds:
            log.error("webhook %s: gave up event %d (%s) after %d attempts since %s: %s", label(url), event.id,
                      event.type, failures, first_failed.isoformat(timespec="seconds"), problem)
            await self._database.write(outbox.mark_done(url, event.id))
            return 0.0
        delay = float(min(self._tuning.retry_first_seconds * 2.0 ** min(failures - 1, 30),
                          self._tuning.retry_longest_seconds))
        await self._database.write(outbox.mark_failed(url, first_failed, now + timedelta(seconds=delay), problem))
        if failures == self._tuning.failing_after or (failures > self._tuning.failing_after and failures % 10 == 0):
            log.warning("webhook %s keeps failing (%d attempts at event %d): %s; retrying for up to 24 h",
                        label(url), failures, event.id, problem)
        else:
            log.info("webhook %s: attempt %d at event %d failed: %s; next in %g s", label(url), failures,
                     event.id, problem, delay)
        return delay

    async def _post(self, url: str, event: OutboxEvent, body: bytes) -> str | None:
        """None when the receiver took it (2xx), else a short reason."""
        assert self._session is not None
        if not self._settings.allow_private_webhooks:
            private = _private_literal(url)
            if private is not None:
                return f"refused: private address {private} (set ALLOW_PRIVATE_WEBHOOKS=true to allow it)"
        headers = {"Content-Type": "application/json", EVENT_HEADER: event.type, DELIVERY_HEADER: str(event.id),
                   SIGNATURE_HEADER: signature(self._settings.webhook_secret, body)}
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(64 * 1024)
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except PrivateAddressError as error:
            return f"refused: {error}"
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, PrivateAddressError) or isinstance(error.__cause__, PrivateAddressError):
                return f"refused: {urlsplit(url).hostname} is a private address (set ALLOW_PRIVATE_WEBHOOKS=true " \
                       "to allow it)"
            return f"{type(error).__name__}: {error}"[:300]
        except TimeoutError:
            return f"no answer within {self._tuning.timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError) as error:
            return f"{type(error).__name__}: {error}"[:300]

    async def _document(self, event: OutboxEvent) -> dict[str, Any] | None:
        public_only = not self._settings.web_include_private
        post = await blog.post_by_id(self._database, event.post_id, public_only=public_only)
        if post is None:
            return None
        comment: dict[str, Any] | None = None
        if event.message_id is not None:
            found = await blog.shown_comment(self._database, event.message_id, public_only=public_only)
            if found is None:
                return None
            if event.type == "comment.deleted":
                comment = {"id": str(found.comment.message_id)}
            elif found.comment.deleted:
                return None  # deleted before this event went out; its delete event follows
            else:
                html = (await render_comments(self._database, [found.comment])).get(found.comment.message_id, "")
                comment = {
                    "id": str(found.comment.message_id), "author": found.comment.author_name,
                    "text": found.text, "html": html, "url": safe_url(found.message_url),
                    "created_at": found.comment.created_at.isoformat().replace("+00:00", "Z"),
                }
                if event.type == "comment.edited" and found.comment.edited_at is not None:
                    comment["edited_at"] = found.comment.edited_at.isoformat().replace("+00:00", "Z")
        return {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
            "post": {"id": post.id, "url": safe_url(post.canonical_url), "title": post.title},
            "comment": comment,
        }
