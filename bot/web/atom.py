"""Atom 1.0 comment feeds: one post's discussion (``/feeds/p/{id}.atom``) and the whole site's
(``/feeds/comments.atom``), newest first. Each entry holds the comment's sanitised HTML (the
renderer's output, escaped as Atom ``type="html"`` content), its author, time, a link to the
message in Discord and one to the blog post.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from bot.web.discussion import safe_url
from bot.web.indexing import iso_time

FEED_ENTRIES = 50
# Characters XML 1.0 does not allow at all (a Discord message may hold them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    entry_id: str  # an absolute IRI, stable for the comment
    title: str
    author: str
    html: str  # sanitised by the renderer
    published: datetime
    updated: datetime
    message_url: str | None
    post_url: str | None
    page_url: str


@dataclass(frozen=True, slots=True)
class Feed:
    feed_id: str
    title: str
    self_url: str
    alternate_url: str | None
    updated: datetime
    entries: Sequence[FeedEntry]


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("", value))


def _link(rel: str, href: str | None, content_type: str | None = None, title: str | None = None) -> str:
    safe = safe_url(href)
    if safe is None:
        return ""
    extra = f" type={_attr(content_type)}" if content_type else ""
    extra += f" title={_attr(title)}" if title else ""
    return f"<link rel={_attr(rel)} href={_attr(safe)}{extra}/>"


def render_feed(feed: Feed) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
             f"<id>{_text(feed.feed_id)}</id>", f"<title>{_text(feed.title)}</title>",
             f"<updated>{iso_time(feed.updated)}</updated>",
             _link("self", feed.self_url, "application/atom+xml"),
             _link("alternate", feed.alternate_url, "text/html"),
             "<generator>conversation-engine</generator>"]
    for entry in feed.entries:
        parts.append("<entry>")
        parts.append(f"<id>{_text(entry.entry_id)}</id><title>{_text(entry.title)}</title>")
        parts.append(f"<author><name>{_text(entry.author)}</name></author>")
        parts.append(f"<published>{iso_time(entry.published)}</published>"
                     f"<updated>{iso_time(entry.updated)}</updated>")
        # The first alternate link is what readers open: the message when there is one, else the page.
        parts.append(_link("alternate", entry.message_url or entry.page_url, "text/html"))
        parts.append(_link("related", entry.post_url, "text/html", "The blog post"))
        parts.append(f'<content type="html">{_text(entry.html)}</content>')
        parts.append("</entry>")
    parts.append("</feed>\n")
    return "\n".join(part for part in parts if part).encode()
