"""Fetching feeds over HTTP: one shared aiohttp session, conditional GET, a size cap, manual
redirects (counted, loop-checked, each hop's host checked) and private-address refusal.

Private addresses are refused twice: before each request the host is resolved and every address
is checked (which gives the admin a precise message), and the session's resolver refuses them again
at connect time, so a DNS answer that changes between the check and the connection (rebinding)
does not get through either.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from bot import __version__
from bot.feeds.errors import (
    FeedConnectionError,
    FeedDNSError,
    FeedError,
    FeedHTTPError,
    FeedRetryLater,
    FeedTimeout,
    FeedTooLarge,
    PrivateAddressRefused,
    TooManyRedirects,
    UnsupportedURL,
)
from bot.feeds.models import FetchResult

USER_AGENT = f"conversation-engine/{__version__} (+https://github.com/conversation-engine/conversation-engine)"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_READ_CHUNK = 64 * 1024
_PERMANENT = (301, 308)
_REDIRECTS = (301, 302, 303, 307, 308)

# Whether the request being made may connect to private addresses (read by the resolver, which
# runs in the requesting task's context).
_allow_private: contextvars.ContextVar[bool] = contextvars.ContextVar("feed_allow_private", default=False)


@dataclass(frozen=True, slots=True)
class FetchTimeouts:
    """Connect and total limits (seconds). Tests pass small ones so a slow server costs little."""

    connect: float = 10.0
    total: float = 30.0


DEFAULT_TIMEOUTS = FetchTimeouts()


class PrivateAddressError(OSError):
    """Raised by the resolver when an address of a host is private."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to a private address ({address})")
        self.host = host
        self.address = address


# IPv6 forms that carry an IPv4 address a router or the host may reach: NAT64 (RFC 6052) and the
# deprecated IPv4-compatible form (``::127.0.0.1``); mapped (``::ffff:``) and 6to4 (``2002::/16``)
# have their own ipaddress properties.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, IPv4-compatible, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 is AA.BB.CC.DD (bits 16-48)
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified addresses,
    also when written as IPv6 around such an IPv4 address (Python counts most of those global)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        ip = embedded_ipv4(ip) or ip
    return ip.is_global and not ip.is_multicast


def private_address_message(host: str, address: str) -> str:
    """What the admin reads when a feed's host is private (the same words on every path)."""
    where = host if address == host else f"{host} points to {address}"
    return (f"refused: private address ({where}); the bot only reads feeds on the public internet "
            "(the bot's owner can set ALLOW_PRIVATE_FEEDS=true)")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops non-public addresses unless allowed: by ``allow_private`` when given
    (webhooks: one setting for the session), else by the current feed request."""

    def __init__(self, inner: AbstractResolver | None = None, *, allow_private: bool | None = None) -> None:
        self._inner = inner if inner is not None else ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = _allow_private.get() if self._allow_private is None else self._allow_private
        if allowed:
            return results
        for result in results:
            if not is_public_address(result["host"]):
                raise PrivateAddressError(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def new_feed_session(*, timeouts: FetchTimeouts = DEFAULT_TIMEOUTS, limit: int = 100,
                     resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The one session all feed requests share (call inside the running loop; close it at exit).
    ``resolver`` answers the guard's lookups (default: the system's)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(resolver),
        use_dns_cache=False,  # every new connection goes through the guard
        limit=limit,
        limit_per_host=8,
        ttl_dns_cache=None,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
        timeout=aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect),
        auto_decompress=True,
        raise_for_status=False,
    )


def _host_label(url: str) -> str:
    return urlsplit(url).hostname or url


async def check_public_host(url: str) -> None:
    """Raise :class:`PrivateAddressRefused` (or :class:`FeedDNSError`) unless every address the
    URL's host resolves to is public."""
    host = urlsplit(url).hostname
    if not host:
        raise UnsupportedURL(f"{url} has no host name")
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FeedDNSError(f"could not find the server {host} (the DNS lookup failed); check the address") from None
        addresses = [str(info[4][0]) for info in infos]
    private = [address for address in addresses if not is_public_address(address)]
    if private:
        raise PrivateAddressRefused(private_address_message(host, private[0]))


def validate_feed_url(url: str) -> str:
    """The URL if it is http(s) with a host, else :class:`UnsupportedURL`."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise UnsupportedURL(f"{url!r} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsupportedURL(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise UnsupportedURL(f"{url!r} has no host name")
    return url.strip()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def fetch_feed(session: aiohttp.ClientSession, url: str, *, etag: str | None = None,
                     last_modified: str | None = None, allow_private: bool = False,
                     timeouts: FetchTimeouts | None = None) -> FetchResult:
    """GET ``url`` (conditionally when validators are given), following at most 5 redirects.

    Returns a 200 (body read, at most 10 MiB) or 304 result; raises a :class:`FeedError` subclass
    with an admin-readable message for everything else.
    """
    url = validate_feed_url(url)
    limits = timeouts or DEFAULT_TIMEOUTS
    token = _allow_private.set(allow_private)
    try:
        async with asyncio.timeout(limits.total):
            return await _fetch(session, url, etag, last_modified, allow_private, limits)
    except TimeoutError:
        raise FeedTimeout(
            f"{_host_label(url)} did not answer within {limits.total:g} seconds (timed out)"
        ) from None
    finally:
        _allow_private.reset(token)


async def _fetch(session: aiohttp.ClientSession, url: str, etag: str | None, last_modified: str | None,
                 allow_private: bool, limits: FetchTimeouts) -> FetchResult:
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    visited = [url]
    moved_to: str | None = None
    still_permanent = True
    timeout = aiohttp.ClientTimeout(total=None, connect=limits.connect, sock_connect=limits.connect)
    for _hop in range(MAX_REDIRECTS + 1):
        if not allow_private:
            await check_public_host(current)
        try:
            async with session.get(current, headers=headers, allow_redirects=False, timeout=timeout) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FeedHTTPError(
                            f"{_host_label(current)} answered HTTP {response.status} (a redirect) without "
                            "saying where to", status=response.status,
                        )
                    target = validate_feed_url(urljoin(current, location))
                    if response.status in _PERMANENT and still_permanent:
                        moved_to = target
                    else:
                        still_permanent = False
                    if target in visited:
                        raise TooManyRedirects(f"redirect loop: {target} redirects back to itself")
                    visited.append(target)
                    current = target
                    continue
                return await _finish(response, url, current, moved_to, visited)
        except FeedError:
            raise
        except aiohttp.ClientConnectorError as error:
            raise _connector_error(current, error) from None
        except aiohttp.ServerTimeoutError:
            raise TimeoutError from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            raise FeedConnectionError(
                f"the connection to {_host_label(current)} broke while reading the feed"
            ) from None
        except aiohttp.ClientResponseError as error:
            raise FeedConnectionError(
                f"{_host_label(current)} sent an invalid HTTP response ({error.message or error.status})"
            ) from None
        except aiohttp.ClientError:
            raise FeedConnectionError(f"the request to {_host_label(current)} failed") from None
    raise TooManyRedirects(f"too many redirects: more than {MAX_REDIRECTS} starting from {url}")


def _connector_error(url: str, error: aiohttp.ClientConnectorError) -> FeedError:
    host = _host_label(url)
    if isinstance(error.os_error, PrivateAddressError):
        # The resolver's refusal; aiohttp reports every resolver error as a failed DNS lookup.
        return PrivateAddressRefused(private_address_message(host, error.os_error.address))
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return FeedDNSError(f"could not find the server {host} (the DNS lookup failed); check the address")
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return FeedConnectionError(f"{host} has an invalid TLS certificate (https); fix the certificate or use "
                                   "a URL it is valid for")
    return FeedConnectionError(f"could not connect to {host} ({error.os_error.strerror or 'connection failed'})")


async def _finish(response: aiohttp.ClientResponse, url: str, final_url: str, moved_to: str | None,
                  visited: list[str]) -> FetchResult:
    status = response.status
    headers = response.headers
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        wait = f"; it asked to wait {retry_after:.0f} seconds" if retry_after is not None else ""
        reason = "too many requests" if status == 429 else "service unavailable"
        raise FeedRetryLater(
            f"{_host_label(final_url)} answered HTTP {status} ({reason}){wait}",
            status=status, retry_after_seconds=retry_after,
        )
    if not (200 <= status < 300 or status == 304):
        reason = response.reason or ""
        hint = " (the feed is not at this address)" if status in (404, 410) else ""
        raise FeedHTTPError(
            f"{_host_label(final_url)} answered HTTP {status} {reason}{hint}".rstrip(), status=status,
        )
    etag = headers.get("ETag")
    last_modified = headers.get("Last-Modified")
    if status == 304:
        return FetchResult(url, final_url, 304, b"", None, etag, last_modified, moved_to, tuple(visited[1:]))
    declared = response.content_length
    if declared is not None and declared > MAX_BODY_BYTES and "Content-Encoding" not in headers:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    content_type: Any = headers.get("Content-Type")
    links = link_header_rels(headers.getall("Link", []), final_url)
    self_links = links.get("self", [])
    return FetchResult(url, final_url, status, b"".join(chunks), content_type, etag, last_modified, moved_to,
                       tuple(visited[1:]), hub_urls=tuple(links.get("hub", [])),
                       self_url=self_links[0] if self_links else None)


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[A-Za-z*-]+\s*=\s*(?:"[^"]*"|[^;,\s]*))*)')
_LINK_REL = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]*))', re.IGNORECASE)


def link_header_rels(values: list[str], base: str) -> dict[str, list[str]]:
    """The http(s) URLs of ``Link`` headers (RFC 8288) by relation, resolved against ``base``."""
    found: dict[str, list[str]] = {}
    for value in values:
        for match in _LINK.finditer(value[:8192]):
            rel = _LINK_REL.search(match.group(2))
            if rel is None:
                continue
            target = urljoin(base, match.group(1).strip())
            if urlsplit(target).scheme not in ("http", "https"):
                continue
            for name in (rel.group(1) if rel.group(1) is not None else rel.group(2)).lower().split():
                found.setdefault(name, []).append(target)
    return found


def _too_large() -> FeedTooLarge:
    return FeedTooLarge(f"feed too large: over {MAX_BODY_BYTES // (1024 * 1024)} MiB; the bot stops reading there")


@dataclass(frozen=True, slots=True)
class FormAnswer:
    status: int
    text: str


async def post_form(session: aiohttp.ClientSession, url: str, form: dict[str, str], *, allow_private: bool,
                    timeouts: FetchTimeouts | None = None) -> FormAnswer:
    """POST a form to ``url`` under the same rules as a feed fetch (public addresses only, checked
    before the request and again at connect time), without following redirects; the answer's text
    is cut at 1 KiB. Raises a :class:`FeedError` subclass for what is not an HTTP answer."""
    url = validate_feed_url(url)
    limits = timeouts or DEFAULT_TIMEOUTS
    token = _allow_private.set(allow_private)
    timeout = aiohttp.ClientTimeout(total=None, connect=limits.connect, sock_connect=limits.connect)
    try:
        async with asyncio.timeout(limits.total):
            if not allow_private:
                await check_public_host(url)
            async with session.post(url, data=form, allow_redirects=False, timeout=timeout) as response:
                body = await response.content.read(1024)
                return FormAnswer(response.status, body.decode("utf-8", errors="replace"))
    except TimeoutError:
        raise FeedTimeout(f"{_host_label(url)} did not answer within {limits.total:g} seconds (timed out)") from None
    except aiohttp.ClientConnectorError as error:
        raise _connector_error(url, error) from None
    except aiohttp.ClientError:
        raise FeedConnectionError(f"the request to {_host_label(url)} failed") from None
    finally:
        _allow_private.reset(token)
