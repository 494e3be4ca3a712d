"""WebSub end to end: our bot (against the Discord emulator) with its web server, a feed served on
127.0.0.1 that advertises a hub, and the test hub of tests/websub_support.py, which verifies
subscriptions against the bot's callback and publishes signed content."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import ConversationBot
from bot.config import Settings
from bot.feeds.fetch import fetch_feed, new_feed_session
from bot.feeds.parse import parse_feed
from bot.feeds.scheduler import next_slot
from bot.feeds.websub import WebSubManager, valid_signature
from bot.storage.db import Database, to_db_time, utcnow
from bot.web import WebServer
from tests.announcements_support import wait_for
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, ServedFeed, numbered_items, rss_document
from tests.test_admin_commands import answer
from tests.web_support import free_port
from tests.websub_support import TestHub, rss_with_hub

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

FAST = replace(TEST_TUNING, websub_tick_seconds=0.1, websub_retry_first_seconds=3600.0)


@dataclass
class Site:
    bot: ConversationBot
    hub: TestHub
    feeds: FeedServer
    served: ServedFeed
    feed_url: str
    base: str
    settings: Settings

    async def subscription(self) -> dict[str, Any] | None:
        row = await self.bot.database.fetch_one("SELECT * FROM websub_subscriptions ORDER BY id DESC LIMIT 1")
        return None if row is None else dict(row)

    async def live(self) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            found = await self.subscription()
            return found if found is not None and found["state"] == "live" else None

        found: dict[str, Any] = await wait_for(check)
        return found

    async def feed_id(self) -> int:
        return int(await wait_for(lambda: self.bot.database.fetch_value("SELECT id FROM feeds")))


@contextlib.asynccontextmanager
async def push_site(emu: FakeDiscord, world: World, tmp_path: Path, *, hub: TestHub | None = None,
                    advertise_hub: bool = True, **overrides: Any) -> AsyncIterator[Site]:
    test_hub = await (hub or TestHub()).start()
    feeds = await FeedServer().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    feed_url = feeds.url("/feed.xml")
    document = rss_with_hub(numbered_items(3, newest=datetime.now(UTC) - timedelta(hours=3)),
                            hub=test_hub.url if advertise_hub else None, self_url=feed_url)
    served = feeds.serve("/feed.xml", document)
    values: dict[str, Any] = {"tuning": FAST, "web_port": port, "public_url": base, "allow_private_feeds": True,
                              "feed_urls": (feed_url,), "announce_channel_id": world.announcements.id,
                              "poll_interval_seconds": 60}
    values.update(overrides)
    settings = bot_settings(emu, tmp_path, **values)
    try:
        async with running_bot(emu, settings) as bot:
            server = WebServer(bot.database, settings)
            server.attach_announcer(bot.announce_wake.wake)  # as bot/__main__.py does
            await server.start()
            try:
                yield Site(bot, test_hub, feeds, served, feed_url, base, settings)
            finally:
                await server.stop()
    finally:
        await test_hub.close()
        await feeds.close()


def new_post_document(site: Site, *, number: int = 4) -> bytes:
    """The feed with one new post on top, as the hub pushes it."""
    items = numbered_items(number, newest=datetime.now(UTC) - timedelta(minutes=1))
    return rss_with_hub(items, hub=site.hub.url, self_url=site.feed_url)


async def post_state(database: Database, url: str) -> str | None:
    value = await database.fetch_value(
        "SELECT a.state FROM posts p JOIN announcements a ON a.post_id = p.id WHERE p.canonical_url = ?", (url,))
    return None if value is None else str(value)


async def test_subscribes_verifies_and_stores_a_signed_push(emulator: FakeDiscord, world: World,
                                                           tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path) as site:
        subscription = await site.live()
        [request] = site.hub.of_mode("subscribe")
        token = subscription["token"]
        assert len(token) >= 32 and request.callback == f"{site.base}/websub/{token}"
        assert request.form["hub.topic"] == site.feed_url  # the feed's rel="self"
        assert request.form["hub.lease_seconds"] == str(FAST.websub_lease_seconds)
        secret = request.form["hub.secret"]
        assert len(secret) >= 32 and secret == subscription["secret"]
        assert request.verified and request.verification_status == 200
        expires = datetime.fromisoformat(subscription["expires_at"])
        assert timedelta(days=9) < expires - datetime.now(UTC) <= timedelta(days=10)

        statuses = await site.hub.publish(site.feed_url, new_post_document(site))
        assert statuses == [202]
        # Stored by the poll's own rules and announced, with its thread, within 5 s without a poll (the
        # announcement interval is an hour: only the push's wake-up can do it).
        polls = site.feeds.hits("/feed.xml")
        await emulator.wait_until(lambda: [m for m in emulator.bot_messages(world.announcements.id)
                                           if m.embeds and m.embeds[0].get("title") == "Post 4"], timeout=5)
        async def recorded() -> bool:  # the message shows in Discord a moment before its row says so
            return await post_state(site.bot.database, "https://blog.example.com/4/") in ("sent", "threaded")

        await wait_for(recorded)
        assert site.feeds.hits("/feed.xml") == polls
        await wait_for(lambda: site.bot.database.fetch_value("SELECT last_push_at FROM websub_subscriptions"))

        # The same document again (a hub retrying) adds nothing: same identity rules as a poll.
        assert await site.hub.publish(site.feed_url, new_post_document(site), algorithm="sha1") == [202]
        await wait_for(lambda: site.bot.database.fetch_value(
            "SELECT last_push_at > ? FROM websub_subscriptions", (subscription["last_push_at"] or "",)))
        assert await site.bot.database.fetch_value("SELECT count(*) FROM posts") == 4

        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert f"push: live until <t:{int(expires.timestamp())}:f>" in listing.content


async def test_verification_for_an_unknown_topic_or_token_is_refused(emulator: FakeDiscord, world: World,
                                                                    tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path, hub=TestHub(verify=False)) as site:
        [request] = await wait_for(lambda: site.hub.of_mode("subscribe"))
        pending = await site.subscription()
        assert pending is not None and pending["state"] == "pending"
        callback = request.callback
        stranger = f"{site.base}/websub/{'x' * 43}"
        assert await site.hub.verification(stranger, "subscribe", site.feed_url, 600) == (404, False)
        assert await site.hub.verification(callback, "subscribe", "http://127.0.0.1:1/other.xml", 600) == (404, False)
        assert await site.hub.verification(callback, "unsubscribe", site.feed_url) == (404, False)  # not asked
        assert (await site.subscription() or {})["state"] == "pending"
        # The right topic on the right callback is confirmed; once live, a replayed one is not.
        assert await site.hub.verification(callback, "subscribe", site.feed_url, 600) == (200, True)
        assert (await site.live())["lease_seconds"] == 600
        assert await site.hub.verification(callback, "subscribe", site.feed_url, 600) == (404, False)


async def test_a_hub_that_denies_the_subscription(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path, hub=TestHub(verify=False)) as site:
        [request] = await wait_for(lambda: site.hub.of_mode("subscribe"))
        denial = {"hub.mode": "denied", "hub.topic": site.feed_url, "hub.reason": "topic not allowed"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{site.base}/websub/{'y' * 43}", params=denial) as response:
                assert response.status == 404
            async with http.get(request.callback, params=denial) as response:
                assert response.status == 200
        found = await site.subscription()
        assert found is not None and found["state"] == "failed"
        assert found["last_error"] == "the hub refused the subscription: topic not allowed"
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert "push: failed: the hub refused the subscription: topic not allowed" in listing.content


async def test_a_push_with_a_bad_signature_is_ignored(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.feeds.websub")
    async with push_site(emulator, world, tmp_path) as site:
        await site.live()
        document = new_post_document(site)
        assert await site.hub.publish(site.feed_url, document, secret="not the secret") == [202]
        assert await site.hub.publish(site.feed_url, document, signature="") == [202]
        assert await site.hub.publish(site.feed_url, document, signature="md5=abcdef") == [202]
        await wait_for(lambda: sum("ignored a notification" in r.getMessage() for r in caplog.records) == 3)
        cog: Any = site.bot.get_cog("Announcements")
        await cog.announce_now()
        assert await post_state(site.bot.database, "https://blog.example.com/4/") is None
        assert not [m for m in emulator.bot_messages(world.announcements.id)
                    if m.embeds and m.embeds[0].get("title") == "Post 4"]
        assert await site.bot.database.fetch_value("SELECT last_push_at FROM websub_subscriptions") is None


async def test_the_lease_is_renewed_before_it_ends(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path, hub=TestHub(lease_override=3)) as site:
        first = await site.live()
        assert first["lease_seconds"] == 3
        await wait_for(lambda: len([r for r in site.hub.of_mode("subscribe") if r.verified]) >= 2, timeout=10)
        renewed = await site.live()
        assert renewed["id"] == first["id"] and renewed["token"] == first["token"]
        assert renewed["expires_at"] > first["expires_at"]
        callbacks = {request.callback for request in site.hub.of_mode("subscribe")}
        assert len(callbacks) == 1  # the same callback and secret: a renewal, not a second subscription


async def test_removing_the_feed_unsubscribes(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path) as site:
        subscription = await site.live()
        feed_id = await site.feed_id()
        removed = await answer(emulator, "feed remove", world.owner, world.announcements, {"feed": str(feed_id)})
        assert "Removed" in removed.content
        [request] = await wait_for(lambda: site.hub.of_mode("unsubscribe"))
        assert request.callback.endswith(subscription["token"]) and request.form["hub.topic"] == site.feed_url
        await wait_for(lambda: request.verified)
        assert await site.subscription() is None
        assert site.hub.subscribers == {}


async def test_polling_slows_down_while_push_is_live(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path, hub=TestHub(verify=False)) as site:
        feed_id = await site.feed_id()
        await wait_for(lambda: site.hub.of_mode("subscribe"))
        scheduler = site.bot.feed_scheduler
        pending_poll = await scheduler.poll_feed(feed_id)
        assert pending_poll.next_poll_at is not None
        assert pending_poll.next_poll_at - datetime.now(UTC) <= timedelta(seconds=61)  # not live: normal pace
        [request] = site.hub.of_mode("subscribe")
        assert (await site.hub.verification(request.callback, "subscribe", site.feed_url, 86_400))[1]
        await site.live()
        url = str(await site.bot.database.fetch_value("SELECT url FROM feeds"))
        before = datetime.now(UTC)
        live_poll = await scheduler.poll_feed(feed_id)
        # The feed's own slot on the 6-hour grid (anywhere up to 6 h away), not the next minute's.
        assert live_poll.next_poll_at == next_slot(url, before, FAST.websub_fallback_poll_seconds)
        stored = await site.bot.database.fetch_value("SELECT next_poll_at FROM feeds")
        assert stored == to_db_time(live_poll.next_poll_at)


async def test_feed_list_says_why_there_is_no_push(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path, hub=TestHub(answer_status=500)) as site:
        failed = await wait_for(lambda: site.bot.database.fetch_value(
            "SELECT last_error FROM websub_subscriptions WHERE state = 'failed'"))
        assert failed == "the hub answered HTTP 500: hub is broken"
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert "push: failed: the hub answered HTTP 500: hub is broken (next try <t:" in listing.content
    async with push_site(emulator, world, tmp_path / "no-hub", advertise_hub=False) as site:
        await site.feed_id()
        await wait_for(lambda: site.bot.database.fetch_value("SELECT initialized FROM feeds"))
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert "push: no (the feed names no WebSub hub; polled)" in listing.content
        assert site.hub.requests == []
    async with push_site(emulator, world, tmp_path / "no-public-url", public_url=None) as site:
        await wait_for(lambda: site.bot.database.fetch_value("SELECT count(*) FROM websub_subscriptions"))
        listing = await answer(emulator, "feed list", world.owner, world.announcements)
        assert "push: off (the feed has a WebSub hub, but PUBLIC_URL and WEB_PORT must both be set)" in listing.content
        assert site.hub.requests == []


# -- the parts on their own -----------------------------------------------------------------------------


def test_signatures() -> None:
    body = b"<rss/>"
    for algorithm in ("sha1", "sha256", "sha512"):
        digest = hmac.new(b"secret", body, getattr(hashlib, algorithm)).hexdigest()
        assert valid_signature(f"{algorithm}={digest}", "secret", body)
        assert valid_signature(f"{algorithm.upper()}={digest.upper()}", "secret", body)
        assert not valid_signature(f"{algorithm}={digest}", "other", body)
        assert not valid_signature(f"{algorithm}={digest}", "secret", body + b" ")
    assert not valid_signature(None, "secret", body)
    assert not valid_signature("", "secret", body)
    assert not valid_signature("md5=" + hashlib.md5(body).hexdigest(), "secret", body)
    assert not valid_signature("sha256", "secret", body)


def test_hubs_and_self_are_found_in_atom_rss_and_json_feed() -> None:
    atom = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            b'<link rel="hub" href="https://hub.example/"/><link rel="self" href="https://blog.example/atom.xml"/>'
            b'<entry><title>x</title><link href="https://blog.example/x"/><id>x</id></entry></feed>')
    parsed = parse_feed(atom, url="https://blog.example/atom.xml", content_type="application/atom+xml")
    assert parsed.hub_urls == ("https://hub.example/",) and parsed.self_url == "https://blog.example/atom.xml"
    rss = rss_with_hub(numbered_items(1), hub="https://pubsubhubbub.example/", self_url="https://blog.example/rss")
    parsed = parse_feed(rss, url="https://blog.example/rss", content_type="application/rss+xml")
    assert parsed.hub_urls == ("https://pubsubhubbub.example/",) and parsed.self_url == "https://blog.example/rss"
    json_feed = (b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "feed_url": "https://b.example/f.json",'
                 b' "hubs": [{"type": "WebSub", "url": "https://hub.example/j"}, {"type": "rssCloud", "url": "x"}],'
                 b' "items": [{"id": "1", "url": "https://b.example/1"}]}')
    parsed = parse_feed(json_feed, url="https://b.example/f.json", content_type="application/feed+json")
    assert parsed.hub_urls == ("https://hub.example/j",) and parsed.self_url == "https://b.example/f.json"
    plain = parse_feed(rss_document(numbered_items(1)), url="https://b.example/", content_type=None)
    assert plain.hub_urls == () and plain.self_url is None


async def test_hub_from_the_link_header() -> None:
    feeds = await FeedServer().start()

    async def with_header(request: web.Request) -> web.StreamResponse:
        return web.Response(body=rss_document(numbered_items(1)), content_type="application/rss+xml", headers={
            "Link": '<https://hub.example/push>; rel="hub", </canonical.xml>; rel="self"'})

    feeds.routes["/feed.xml"] = with_header
    session = new_feed_session()
    try:
        result = await fetch_feed(session, feeds.url("/feed.xml"), allow_private=True)
    finally:
        await session.close()
        await feeds.close()
    assert result.hub_urls == ("https://hub.example/push",) and result.self_url == feeds.url("/canonical.xml")


async def test_a_hub_on_a_private_address_is_refused(database: Database) -> None:
    hub = await TestHub().start()
    now = utcnow()

    def seed(connection: Any) -> None:
        connection.execute("INSERT INTO feeds (id, guild_id, url, channel_id, created_at) VALUES "
                           "(1, 1, 'https://blog.example/feed', 2, ?)", (to_db_time(now),))
        connection.execute(
            "INSERT INTO websub_subscriptions (feed_id, token, hub_url, topic_url, secret, state, next_action_at, "
            "created_at) VALUES (1, 'tokentokentokentoken', ?, 'https://blog.example/feed', 's', 'wanted', ?, ?)",
            (hub.url, to_db_time(now), to_db_time(now)))

    await database.write(seed)
    settings = Settings(discord_token="", public_url="https://bot.example", web_port=8080, tuning=FAST)
    session = new_feed_session()
    try:
        assert await WebSubManager(database, session, settings).run_due() == 1
    finally:
        await session.close()
        await hub.close()
    row = await database.fetch_one("SELECT state, last_error FROM websub_subscriptions")
    assert row is not None and row["state"] == "failed"
    assert "private address (127.0.0.1)" in row["last_error"]
    assert hub.requests == []


async def test_an_oversized_push_is_refused(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path) as site:
        subscription = await site.live()
        async with aiohttp.ClientSession() as http, http.post(
                f"{site.base}/websub/{subscription['token']}", data=b"x" * (4 * 1024 * 1024 + 1)) as response:
            assert response.status == 413


async def test_a_push_obeys_the_feeds_filter(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with push_site(emulator, world, tmp_path) as site:
        await site.live()
        saved = await answer(emulator, "feed filter", world.owner, world.announcements,
                             {"feed": str(await site.feed_id()), "exclude": "/^post 4$/"})
        assert "filter" in saved.content.lower()
        assert await site.hub.publish(site.feed_url, new_post_document(site, number=5)) == [202]
        # Post 5 is kept and announced at once; post 4, pushed in the same document, is dropped.
        await emulator.wait_until(lambda: [m for m in emulator.bot_messages(world.announcements.id)
                                           if m.embeds and m.embeds[0].get("title") == "Post 5"], timeout=5)
        assert await site.bot.database.fetch_value(
            "SELECT a.state || ':' || a.filtered FROM posts p JOIN announcements a ON a.post_id = p.id "
            "WHERE p.canonical_url = 'https://blog.example.com/4/'") == "skipped:1"
        assert not [m for m in emulator.bot_messages(world.announcements.id)
                    if m.embeds and m.embeds[0].get("title") == "Post 4"]
