"""Parsing feed documents into :class:`ParsedFeed` (sync; run it in a worker thread).

RSS 0.9x/1.0/2.0 and Atom go through feedparser, JSON Feed through ``json``. Before feedparser
sees a document its prolog is checked: entity declarations of the kinds XML bombs and
external-entity attacks use are refused outright, so neither costs time nor memory.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import multiprocessing
import os
import re
import threading
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from hashlib import sha1
from time import struct_time
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser
from feedparser.datetimes import _parse_date

from bot.feeds import jsonfeed
from bot.feeds.errors import EmptyResponse, FeedSyntaxError, FeedTooLarge, NotAFeed, UnsafeFeed
from bot.feeds.fetch import MAX_BODY_BYTES
from bot.feeds.identity import RawIdentity, assign_identities
from bot.feeds.models import FeedKind, ParsedFeed
from bot.feeds.urls import canonicalize_url
from bot.model.posts import Entry
from bot.render.html_to_discord import first_image_src, html_to_discord, html_to_plain_text
from bot.render.text import cut_at_word, strip_invisible

SUMMARY_LIMIT = 350
TITLE_FALLBACK_LIMIT = 80
MAX_CATEGORIES = 20
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg")
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_SAFE_ENTITY_DECL = re.compile(r"<!ENTITY\s+([A-Za-z_][\w.:-]*)\s+(\"[^\"&%<]{0,256}\"|'[^'&%<]{0,256}')\s*>")
_MAX_ENTITY_DECLS = 64
_WHITESPACE = re.compile(r"\s+")

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_process_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _parse_executor() -> ThreadPoolExecutor:
    # Two workers: enough to overlap with the network, few enough that the event loop thread rarely
    # waits for the GIL behind a crowd of parsers.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feed-parse")
    return _executor


async def parse_feed_in_thread(body: bytes, *, url: str, content_type: str | None,
                               now: datetime | None = None) -> ParsedFeed:
    """:func:`parse_feed` on the feed-parsing worker threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _parse_executor(), lambda: parse_feed(body, url=url, content_type=content_type, now=now)
    )


def _lower_priority() -> None:
    # Parsing is background work: when CPUs are scarce the event loop (Discord heartbeats, slash
    # commands) must get them first. os.nice is POSIX only: on Windows the workers keep the normal
    # priority (an initializer that raised would break the pool for every parse).
    nice = getattr(os, "nice", None)
    if nice is None:
        return
    try:
        nice(10)
    except OSError:
        log.debug("could not lower the feed parser's priority")


def _start_parse_pool() -> ProcessPoolExecutor:
    """Create the worker pool and start its processes; called in a thread, since starting a
    process takes long enough to stall the event loop."""
    global _process_pool
    with _pool_lock:
        if _process_pool is None:
            # Spawned (not forked: this process has threads), one worker per spare core.
            workers = max(1, min(4, (os.cpu_count() or 2) - 1))
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_lower_priority)
            for started in [pool.submit(time.sleep, 0.05) for _ in range(workers)]:
                started.result()
            _process_pool = pool
        return _process_pool


async def parse_feed_in_worker(body: bytes, *, url: str, content_type: str | None,
                               now: datetime | None = None) -> ParsedFeed:
    """:func:`parse_feed` in a worker process: a parse takes tens of milliseconds of pure Python,
    and in a thread it would hold the GIL against the event loop (stalls of 100 ms and more were
    measured with a few parses at once). Falls back to the thread when the pool is broken."""
    global _process_pool
    loop = asyncio.get_running_loop()
    call = functools.partial(parse_feed, body, url=url, content_type=content_type, now=now)
    pool = _process_pool or await asyncio.to_thread(_start_parse_pool)
    try:
        return await loop.run_in_executor(pool, call)
    except BrokenProcessPool:
        log.warning("the feed parsing worker process died; restarting it")
        _process_pool = None
        return await parse_feed_in_thread(body, url=url, content_type=content_type, now=now)


def shutdown_parse_workers() -> None:
    """Stop the parsing worker processes (they are started again when needed)."""
    global _process_pool
    if _process_pool is not None:
        _process_pool.shutdown(wait=True, cancel_futures=True)
        _process_pool = None


def parse_feed(body: bytes, *, url: str, content_type: str | None, now: datetime | None = None) -> ParsedFeed:
    """Parse a fetched document. ``now`` is the first-seen time given to undated items.

    Raises a :class:`bot.feeds.errors.FeedError` subclass with a specific message when nothing
    usable is in the document; a partly broken feed yields what parsed (``problem`` says what was
    wrong).
    """
    seen_at = now or datetime.now(UTC)
    body = _maybe_gunzip(body)
    if not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise EmptyResponse("empty response: the server sent no content")
    mime = _mime(content_type)
    if _looks_like_json(body, mime):
        return _parse_json_feed(body, url, seen_at)
    _refuse_dangerous_entities(body)
    return _parse_xml_feed(body, url, content_type, mime, seen_at)


def _mime(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _maybe_gunzip(body: bytes) -> bytes:
    """Some servers gzip the feed file itself and send it without Content-Encoding."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise FeedSyntaxError("the body looks gzip-compressed but could not be decompressed") from None
    if len(data) > MAX_BODY_BYTES:
        raise FeedTooLarge("feed too large: over 10 MiB once decompressed; the bot stops reading there")
    return data


def _looks_like_json(body: bytes, mime: str | None) -> bool:
    if mime and "json" in mime:
        return True
    head = body[:64].lstrip(b" \t\r\n\xef\xbb\xbf")
    return head[:1] in (b"{", b"[")


def _text_view(body: bytes) -> str:
    """A decoding good enough to find markup in (ASCII-compatible bytes map 1:1 through latin-1)."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16", errors="replace")
    if body.startswith(b"<\x00") or body.startswith(b"\x00<"):
        return body.decode("utf-16-le" if body[0] == 0x3C else "utf-16-be", errors="replace")
    return body.decode("latin-1")


def _refuse_dangerous_entities(body: bytes) -> None:
    """Refuse entity declarations in the prolog unless each is a short plain-text constant.

    Billion laughs and quadratic blow-up need entities that reference entities or carry huge values;
    XXE needs SYSTEM/PUBLIC; the parameter-entity tricks need ``%``. None of that survives this.
    """
    text = _text_view(body)
    first = _FIRST_ELEMENT.search(text)
    prolog = text[: first.start()] if first else text
    declarations = _ENTITY_DECL.findall(prolog)
    if not declarations:
        return
    safe = _SAFE_ENTITY_DECL.findall(prolog)
    if len(safe) != len(declarations) or len(declarations) > _MAX_ENTITY_DECLS:
        raise UnsafeFeed(
            "refused: the document declares XML entities the way XML bombs and external-entity attacks do "
            "(<!ENTITY> in its DOCTYPE); real feeds do not need them"
        )


# -- XML (feedparser) ---------------------------------------------------------------------------------


def _parse_xml_feed(body: bytes, url: str, content_type: str | None, mime: str | None,
                    seen_at: datetime) -> ParsedFeed:
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    # feedparser's HTML sanitising is off: it costs more than the parse itself, and html_to_discord
    # already drops scripts and the like and keeps only http(s)/mailto links. Relative URIs are still
    # resolved by feedparser, which knows each element's xml:base.
    result = feedparser.parse(body, response_headers=headers, resolve_relative_uris=True, sanitize_html=False)
    version: str = result.get("version") or ""
    raw_entries: list[Any] = list(result.get("entries") or [])
    problem = _describe_bozo(result.get("bozo_exception")) if result.get("bozo") else None
    exception = result.get("bozo_exception")
    broken = isinstance(exception, SAXParseException)
    if not raw_entries and (not version or broken):
        shown = mime or "no content type"
        if _looks_like_html(body, mime):
            raise NotAFeed(f"not a feed: the server sent an HTML page ({shown})")
        if broken:
            raise FeedSyntaxError(_xml_error(exception))
        raise NotAFeed(f"not a feed: the document is not RSS, Atom or JSON Feed ({shown})")
    feed: Mapping[str, Any] = result.get("feed") or {}
    home_url = _http_url(feed.get("link"), url)
    base = home_url or url
    kind: FeedKind = "atom" if version.startswith("atom") else "rss"
    title = _plain_title(feed.get("title"), feed.get("title_detail")) or _host(url)

    drafts: list[dict[str, Any]] = []
    for raw in raw_entries:
        drafts.append(_draft_from_feedparser(raw, url, seen_at))
    entries, skipped = _finish_entries(drafts, base, seen_at)
    hubs, self_url = _feed_links(feed.get("links"), url)
    return ParsedFeed(kind, title, home_url, entries, problem, skipped, hubs, self_url)


def _feed_links(links: Any, base: str) -> tuple[tuple[str, ...], str | None]:
    """The WebSub hubs and the self URL among a feed's ``<link>`` elements (Atom, and atom:link in RSS)."""
    hubs: list[str] = []
    self_url: str | None = None
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, Mapping):
            continue
        href = _http_url(link.get("href"), base, canonical=False)
        rels = str(link.get("rel") or "").lower().split()
        if href is None:
            continue
        if "hub" in rels and href not in hubs:
            hubs.append(href)
        if "self" in rels and self_url is None:
            self_url = href
    return tuple(hubs), self_url


def _xml_error(exception: SAXParseException) -> str:
    return f"XML error at line {exception.getLineNumber()}: {exception.getMessage()}"


def _describe_bozo(exception: object) -> str | None:
    if exception is None:
        return None
    if isinstance(exception, SAXParseException):
        return _xml_error(exception)
    return f"{type(exception).__name__}: {exception}"[:300]


def _looks_like_html(body: bytes, mime: str | None) -> bool:
    if mime in _HTML_TYPES:
        return True
    head = _text_view(body[:2048]).lower()
    return "<!doctype html" in head or "<html" in head


def _draft_from_feedparser(raw: Mapping[str, Any], feed_url: str, seen_at: datetime) -> dict[str, Any]:
    link = _http_url(raw.get("link"), feed_url)
    if link is None:
        for candidate in raw.get("links") or []:
            if candidate.get("rel", "alternate") == "alternate":
                link = _http_url(candidate.get("href"), feed_url)
                if link:
                    break
    guid = raw.get("id")
    guid = guid.strip() if isinstance(guid, str) and guid.strip() else None
    if link is None and guid is not None:
        link = _http_url(guid, feed_url)
    body_html = ""
    summary_detail = raw.get("summary_detail") or {}
    if raw.get("summary"):
        body_html = _as_html(raw["summary"], summary_detail.get("type"))
    contents = raw.get("content") or []
    content_html = _as_html(contents[0].get("value", ""), contents[0].get("type")) if contents else ""
    if not body_html.strip():
        body_html = content_html
    published = _utc(raw.get("published_parsed")) or _utc(raw.get("created_parsed"))
    # dict.get: FeedParserDict.get would hand back published_parsed (with a warning) when there is none.
    updated = _utc(dict.get(raw, "updated_parsed")) if isinstance(raw, dict) else None
    image = _feedparser_image(raw, link or feed_url) or _first_image(content_html or body_html, link or feed_url)
    tags = [tag.get("term") or tag.get("label") for tag in raw.get("tags") or []]
    author = raw.get("author_detail", {}).get("name") or raw.get("author")
    return {
        "guid": guid,
        "link": link,
        "title": _plain_title(raw.get("title"), raw.get("title_detail")),
        "author": _clean_line(author) if isinstance(author, str) else None,
        "summary_html": body_html,
        "published": published or updated,
        "updated": updated,
        "image": image,
        "categories": tags,
        "raw_date": raw.get("published") or (dict.get(raw, "updated") if isinstance(raw, dict) else None),
    }


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
# Enough markup for a 350-character summary in all but odd documents (checked, see _summary).
_SUMMARY_HTML_PREFIX = 8192


def _first_image(html_text: str, base: str) -> str | None:
    """first_image_src, but only over the markup up to the first few <img> tags (content can be huge)."""
    matches = list(_IMG_TAG.finditer(html_text, 0, len(html_text)))[:5] if "<img" in html_text.lower() else []
    if not matches:
        return None
    return first_image_src(html_text[: matches[-1].end()], base)


def _summary(summary_html: str, base: str) -> str:
    if not summary_html:
        return ""
    if len(summary_html) > _SUMMARY_HTML_PREFIX:
        cut = html_to_discord(summary_html[:_SUMMARY_HTML_PREFIX], base_url=base, limit=SUMMARY_LIMIT)
        if len(cut) >= SUMMARY_LIMIT - 40:
            return cut
    return html_to_discord(summary_html, base_url=base, limit=SUMMARY_LIMIT)


def _as_html(value: str, content_type: str | None) -> str:
    if content_type and content_type not in _HTML_TYPES:
        return html.escape(value)
    return value


def _plain_title(value: Any, detail: Any) -> str:
    if not isinstance(value, str):
        return ""
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    if kind in _HTML_TYPES or ("<" in value and ">" in value):
        value = html_to_plain_text(value)
    return _clean_line(value)


def _clean_line(value: str) -> str:
    return _WHITESPACE.sub(" ", strip_invisible(value)).strip()


def _utc(parsed: Any) -> datetime | None:
    if not isinstance(parsed, struct_time | tuple) or len(parsed) < 6:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in parsed[:6])
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _is_image_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(_IMAGE_EXTENSIONS)


def _feedparser_image(raw: Mapping[str, Any], base: str) -> str | None:
    for thumbnail in raw.get("media_thumbnail") or []:
        url = _http_url(thumbnail.get("url"), base, canonical=False)
        if url:
            return url
    for media in raw.get("media_content") or []:
        candidate = media.get("url")
        medium, kind = media.get("medium") or "", media.get("type") or ""
        if medium == "image" or kind.startswith("image/") or (
            not medium and not kind and isinstance(candidate, str) and _is_image_url(candidate)
        ):
            url = _http_url(candidate, base, canonical=False)
            if url:
                return url
    for enclosure in raw.get("enclosures") or []:
        if str(enclosure.get("type") or "").startswith("image/"):
            url = _http_url(enclosure.get("href"), base, canonical=False)
            if url:
                return url
    return None


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _http_url(value: Any, base: str, *, canonical: bool = True) -> str | None:
    """An absolute http(s) URL made from ``value`` (resolved against ``base``), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        absolute = canonicalize_url(value, base) if canonical else urljoin(base, value.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return absolute


# -- JSON Feed -------------------------------------------------------------------------------------------


def _parse_json_feed(body: bytes, url: str, seen_at: datetime) -> ParsedFeed:
    text = _decode_json_text(body)
    document = jsonfeed.load_json_feed(text)
    home_url = _http_url(jsonfeed.text_field(document, "home_page_url"), url)
    base = home_url or url
    title = _clean_line(jsonfeed.text_field(document, "title") or "") or _host(url)
    items = document.get("items")
    drafts: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        link = _http_url(jsonfeed.text_field(item, "url"), base) or _http_url(
            jsonfeed.text_field(item, "external_url"), base
        )
        guid = jsonfeed.text_field(item, "id")
        if link is None and guid is not None:
            link = _http_url(guid, base)
        content_html = jsonfeed.text_field(item, "content_html") or ""
        summary_text = jsonfeed.text_field(item, "summary")
        if summary_text:
            summary_html = html.escape(summary_text)
        elif content_html:
            summary_html = content_html
        else:
            summary_html = html.escape(jsonfeed.text_field(item, "content_text") or "")
        image = _http_url(jsonfeed.item_image(item), link or base, canonical=False) or (
            _first_image(content_html, link or base) if content_html else None
        )
        published_text = jsonfeed.text_field(item, "date_published")
        modified_text = jsonfeed.text_field(item, "date_modified")
        published = _parse_any_date(published_text)
        updated = _parse_any_date(modified_text)
        drafts.append({
            "guid": guid,
            "link": link,
            "title": _clean_line(jsonfeed.text_field(item, "title") or ""),
            "author": jsonfeed.item_author(document, item),
            "summary_html": summary_html,
            "published": published or updated,
            "updated": updated,
            "image": image,
            "categories": jsonfeed.item_tags(item),
            "raw_date": published_text or modified_text,
        })
    entries, skipped = _finish_entries(drafts, base, seen_at)
    hubs = document.get("hubs")
    hub_urls = tuple(dict.fromkeys(
        found for hub in (hubs if isinstance(hubs, list) else []) if isinstance(hub, dict)
        and str(hub.get("type") or "").lower() in ("websub", "pubsubhubbub")
        and (found := _http_url(jsonfeed.text_field(hub, "url"), url, canonical=False)) is not None))
    self_url = _http_url(jsonfeed.text_field(document, "feed_url"), url, canonical=False)
    return ParsedFeed("json", title, home_url, entries, None, skipped, hub_urls, self_url)


def _decode_json_text(body: bytes) -> str:
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16", errors="replace")
    return body.decode("utf-8-sig", errors="replace")


def _parse_any_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return _utc(_parse_date(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- shared ---------------------------------------------------------------------------------------------


def _finish_entries(drafts: list[dict[str, Any]], base: str,
                    seen_at: datetime) -> tuple[tuple[Entry, ...], int]:
    """Identities, fallbacks and ordering (newest first) for the items of one document."""
    identities = assign_identities([
        RawIdentity(
            guid=draft["guid"], link=draft["link"], title=draft["title"],
            date=draft["published"].isoformat() if draft["published"] else draft["raw_date"],
        )
        for draft in drafts
    ])
    home = canonicalize_url(base)
    entries: list[Entry] = []
    skipped = 0
    for draft, identity in zip(drafts, identities, strict=True):
        if identity is None:
            skipped += 1
            continue
        link = draft["link"]
        if link is None:
            # No permalink: point at the blog's home page, made unique by the item's identity.
            link = f"{home}#item-{sha1(identity.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
        summary_html: str = draft["summary_html"] or ""
        summary = _summary(summary_html, link)
        title = draft["title"]
        if not title:
            plain = _clean_line(html_to_plain_text(summary_html)) if summary_html else ""
            title = cut_at_word(plain, TITLE_FALLBACK_LIMIT) if plain else "Untitled"
        categories: list[str] = []
        for category in draft["categories"]:
            if isinstance(category, str):
                cleaned = _clean_line(category)[:100]
                if cleaned and cleaned not in categories:
                    categories.append(cleaned)
        published: datetime | None = draft["published"]
        updated: datetime | None = draft["updated"]
        if updated is not None and updated == published:
            updated = None  # feedparser copies the date into both; only a real revision date counts
        entries.append(Entry(
            identity=identity,
            link=link,
            guid=draft["guid"],
            title=title,
            author=draft["author"] or None,
            summary=summary,
            published=published or seen_at,
            updated=updated,
            date_known=published is not None,
            image_url=draft["image"],
            categories=tuple(categories[:MAX_CATEGORIES]),
        ))
    # Newest first; undated items count as just seen, and equal dates keep document order.
    entries.sort(key=lambda entry: entry.published, reverse=True)
    return tuple(entries), skipped
