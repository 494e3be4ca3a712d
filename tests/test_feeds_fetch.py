"""Fetching from a real local aiohttp server: validators, redirects, limits, errors, private hosts."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.feeds import fetch
from bot.feeds.errors import (
    FeedHTTPError,
    FeedRetryLater,
    FeedTimeout,
    FeedTooLarge,
    NotAFeed,
    PrivateAddressRefused,
    TooManyRedirects,
    UnsupportedURL,
)
from bot.feeds.fetch import USER_AGENT, FetchTimeouts, fetch_feed, is_public_address, new_feed_session
from bot.feeds.scheduler import preview_feed
from tests.feeds_support import FeedServer, Item, rss_document

FAST = FetchTimeouts(connect=1.0, total=1.0)
BODY = rss_document([Item("Hello", "https://blog.example.com/hello/", "h1", datetime(2026, 11, 1, tzinfo=UTC))])


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    running = await FeedServer().start()
    yield running
    await running.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    created = new_feed_session(timeouts=FAST)
    yield created
    await created.close()


async def test_plain_fetch_sends_the_user_agent(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.serve("/feed", BODY, etag='"v1"')
    result = await fetch_feed(session, server.url("/feed"), allow_private=True)
    assert result.status == 200 and result.body == BODY and result.etag == '"v1"'
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.moved_to is None and result.final_url == server.url("/feed")
    sent = server.requests[-1].headers
    assert sent["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("conversation-engine/0.1.0 (+https://github.com/conversation-engine/")
    assert "gzip" in sent["Accept-Encoding"]


async def test_conditional_get_with_etag_and_last_modified(server: FeedServer,
                                                           session: aiohttp.ClientSession) -> None:
    server.serve("/etag", BODY, etag='"abc"')
    server.serve("/lm", BODY, last_modified="Sun, 01 Nov 2026 10:00:00 GMT")
    by_etag = await fetch_feed(session, server.url("/etag"), etag='"abc"', allow_private=True)
    assert by_etag.not_modified and by_etag.body == b""
    assert server.requests[-1].headers["If-None-Match"] == '"abc"'
    by_date = await fetch_feed(session, server.url("/lm"), last_modified="Sun, 01 Nov 2026 10:00:00 GMT",
                               allow_private=True)
    assert by_date.not_modified
    stale = await fetch_feed(session, server.url("/etag"), etag='"old"', allow_private=True)
    assert stale.status == 200 and stale.body == BODY


async def test_gzip_transfer_encoding_is_decoded(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.serve("/gz", BODY, gzip=True)
    result = await fetch_feed(session, server.url("/gz"), allow_private=True)
    assert result.body == BODY


async def test_temporary_and_permanent_redirects(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.serve("/new", BODY)
    server.redirect("/temp", "/new", 302)
    server.redirect("/perm", "/new", 301)
    server.redirect("/perm308", server.url("/perm"), 308)
    server.redirect("/perm-then-temp", "/temp", 301)
    temporary = await fetch_feed(session, server.url("/temp"), allow_private=True)
    assert temporary.final_url == server.url("/new") and temporary.moved_to is None
    permanent = await fetch_feed(session, server.url("/perm"), allow_private=True)
    assert permanent.moved_to == server.url("/new") and permanent.body == BODY
    chain = await fetch_feed(session, server.url("/perm308"), allow_private=True)
    assert chain.moved_to == server.url("/new") and chain.redirects == (server.url("/perm"), server.url("/new"))
    # Only the permanent part of a chain counts as the feed's new home.
    mixed = await fetch_feed(session, server.url("/perm-then-temp"), allow_private=True)
    assert mixed.moved_to == server.url("/temp") and mixed.final_url == server.url("/new")


async def test_redirect_loop_and_too_many_redirects(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    with pytest.raises(TooManyRedirects, match="^redirect loop"):
        await fetch_feed(session, server.url("/a"), allow_private=True)
    for hop in range(7):
        server.redirect(f"/hop{hop}", f"/hop{hop + 1}")
    server.serve("/hop7", BODY)
    with pytest.raises(TooManyRedirects, match="^too many redirects: more than 5"):
        await fetch_feed(session, server.url("/hop0"), allow_private=True)
    assert server.hits("/hop6") == 0
    # Five redirects are fine.
    result = await fetch_feed(session, server.url("/hop2"), allow_private=True)
    assert result.final_url == server.url("/hop7")


async def test_slow_server_times_out(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.slow("/slow", 5.0)
    started = time.perf_counter()
    with pytest.raises(FeedTimeout, match=r"did not answer within 0\.5 seconds"):
        await fetch_feed(session, server.url("/slow"), allow_private=True,
                         timeouts=FetchTimeouts(connect=0.5, total=0.5))
    assert time.perf_counter() - started < 2


async def test_oversized_bodies_are_cut_off(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.endless("/stream")
    server.endless("/declared", declare_length=11 * 1024 * 1024)
    for path in ("/stream", "/declared"):
        with pytest.raises(FeedTooLarge, match="^feed too large"):
            await fetch_feed(session, server.url(path), allow_private=True,
                             timeouts=FetchTimeouts(connect=1, total=10))


async def test_http_errors_and_retry_after(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.status("/busy", 429, {"Retry-After": "120"})
    server.status("/down", 503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    server.status("/broken", 500)
    with pytest.raises(FeedRetryLater) as busy:
        await fetch_feed(session, server.url("/busy"), allow_private=True)
    assert busy.value.status == 429 and busy.value.retry_after_seconds == 120
    assert busy.value.message == "127.0.0.1 answered HTTP 429 (too many requests); it asked to wait 120 seconds"
    with pytest.raises(FeedRetryLater) as down:
        await fetch_feed(session, server.url("/down"), allow_private=True)
    assert down.value.retry_after_seconds is not None and down.value.retry_after_seconds > 86400
    with pytest.raises(FeedHTTPError, match="answered HTTP 500 Internal Server Error") as broken:
        await fetch_feed(session, server.url("/broken"), allow_private=True)
    assert broken.value.status == 500
    with pytest.raises(FeedHTTPError, match=r"HTTP 404 Not Found \(the feed is not at this address\)"):
        await fetch_feed(session, server.url("/missing"), allow_private=True)


async def test_wrong_content_type_is_reported_by_preview(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.serve("/page", b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", content_type="text/html")
    with pytest.raises(NotAFeed) as error:
        await preview_feed(session, server.url("/page"), allow_private=True, timeouts=FAST)
    assert error.value.message == "not a feed: the server sent an HTML page (text/html)"
    server.serve("/feed", BODY, content_type="text/plain")
    preview = await preview_feed(session, server.url("/feed"), allow_private=True, timeouts=FAST)
    assert (preview.title, preview.item_count, preview.newest[0].title) == ("Test Blog", 1, "Hello")


async def test_private_addresses_are_refused_unless_allowed(server: FeedServer,
                                                            session: aiohttp.ClientSession) -> None:
    server.serve("/feed", BODY)
    with pytest.raises(PrivateAddressRefused, match=r"^refused: private address \(127\.0\.0\.1\); the bot"):
        await fetch_feed(session, server.url("/feed"), allow_private=False)
    with pytest.raises(PrivateAddressRefused, match=r"^refused: private address \(localhost points to (127|::1)"):
        await fetch_feed(session, f"http://localhost:{server.port}/feed", allow_private=False)
    assert server.requests == []
    assert (await fetch_feed(session, server.url("/feed"), allow_private=True)).status == 200


async def test_a_redirect_to_a_private_address_is_refused(server: FeedServer, session: aiohttp.ClientSession,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Everything in a test is on loopback; for this test 127.0.0.1 counts as the public internet
    # and 127.0.0.2 as the private network the redirect tries to reach.
    monkeypatch.setattr(fetch, "is_public_address", lambda address: address == "127.0.0.1")
    server.redirect("/feed", f"http://127.0.0.2:{server.port}/internal", 302)
    with pytest.raises(PrivateAddressRefused, match=r"127\.0\.0\.2"):
        await fetch_feed(session, server.url("/feed"), allow_private=False)
    assert [request.path for request in server.requests] == ["/feed"]


async def test_the_resolver_refuses_private_answers_too() -> None:
    # The connect-time guard (against DNS answers that change after the check).
    resolver = fetch.GuardedResolver()
    with pytest.raises(fetch.PrivateAddressError):
        await resolver.resolve("localhost", 80)
    token = fetch._allow_private.set(True)
    try:
        assert await resolver.resolve("localhost", 80)
    finally:
        fetch._allow_private.reset(token)
    await resolver.close()


def test_address_classification() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "::1",
                    "fe80::1", "fd00::1", "224.0.0.1", "0.0.0.0", "100.64.0.1", "::ffff:10.0.0.1"):
        assert not is_public_address(address), address
    for address in ("93.184.216.34", "2606:4700::6810:85e5", "1.1.1.1"):
        assert is_public_address(address), address


async def test_bad_urls_are_refused_before_any_lookup(session: aiohttp.ClientSession) -> None:
    with pytest.raises(UnsupportedURL, match="not an http:// or https:// URL"):
        await fetch_feed(session, "ftp://example.com/feed", allow_private=True)
    with pytest.raises(UnsupportedURL):
        await fetch_feed(session, "file:///etc/passwd", allow_private=True)
    with pytest.raises(UnsupportedURL, match="has no host name"):
        await fetch_feed(session, "http:///feed", allow_private=True)


# IPv6 forms around a private IPv4 address: Python's ipaddress counts all but the mapped one global.
WRAPPED_PRIVATE = {
    "mapped": "::ffff:127.0.0.1",
    "NAT64": "64:ff9b::7f00:1",
    "NAT64 dotted": "64:ff9b::10.0.0.1",
    "IPv4-compatible": "::127.0.0.1",
    "IPv4-compatible metadata": "::169.254.169.254",
    "6to4": "2002:c0a8:0101::1",  # 192.168.1.1 in bits 16-48
    "6to4 loopback": "2002:7f00:1::",
}
WRAPPED_PUBLIC = {"mapped": "::ffff:93.184.216.34", "NAT64": "64:ff9b::5db8:d822",
                  "IPv4-compatible": "::93.184.216.34", "6to4": "2002:5db8:d822::1"}


@pytest.mark.parametrize("form", list(WRAPPED_PRIVATE))
def test_ipv6_around_a_private_ipv4_is_private(form: str) -> None:
    assert not is_public_address(WRAPPED_PRIVATE[form])


@pytest.mark.parametrize("form", list(WRAPPED_PUBLIC))
def test_ipv6_around_a_public_ipv4_is_public(form: str) -> None:
    assert is_public_address(WRAPPED_PUBLIC[form])


@pytest.mark.parametrize("form", list(WRAPPED_PRIVATE))
async def test_a_feed_url_with_a_wrapped_private_address_is_refused(session: aiohttp.ClientSession,
                                                                    form: str) -> None:
    address = WRAPPED_PRIVATE[form]
    with pytest.raises(PrivateAddressRefused) as refused:
        await fetch_feed(session, f"http://[{address}]:8080/feed", allow_private=False)
    assert refused.value.message.startswith(f"refused: private address ({address}); ")


class AnsweringResolver(AbstractResolver):
    """A DNS server of the test's: every name resolves to one address."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET6,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("form", list(WRAPPED_PRIVATE))
async def test_the_resolver_refuses_wrapped_private_answers(form: str) -> None:
    resolver = fetch.GuardedResolver(AnsweringResolver(WRAPPED_PRIVATE[form]))
    with pytest.raises(fetch.PrivateAddressError, match="blog.example resolves to a private address"):
        await resolver.resolve("blog.example", 80)
    await resolver.close()


async def test_a_private_answer_at_connect_time_says_refused_not_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    # The name looked public when checked and resolves to NAT64-wrapped loopback when connecting
    # (DNS rebinding); the guard in the resolver refuses it, and the admin reads why.
    async def looked_public(url: str) -> None:
        return None

    monkeypatch.setattr(fetch, "check_public_host", looked_public)
    answering = AnsweringResolver("64:ff9b::7f00:1")
    session = new_feed_session(timeouts=FAST, resolver=answering)
    try:
        with pytest.raises(PrivateAddressRefused) as refused:
            await fetch_feed(session, "http://blog.example/feed", allow_private=False)
    finally:
        await session.close()
    assert answering.asked == ["blog.example"]
    assert refused.value.message == (
        "refused: private address (blog.example points to 64:ff9b::7f00:1); the bot only reads feeds on the "
        "public internet (the bot's owner can set ALLOW_PRIVATE_FEEDS=true)")
