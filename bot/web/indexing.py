"""What makes a discussion indexable: schema.org JSON-LD for the /p/ page, the comments as an HTML
fragment for static-site generators, and the sitemap of /p/ pages.

Only what :func:`bot.web.discussion.load_discussion` returns reaches these (public, non-hidden
comments of authors who have not opted out); deleted comments leave no trace here.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from bot.storage.blog import BlogPost, DiscussionPage
from bot.web.discussion import Discussion, ThreadedComment, safe_url

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
# JSON inside <script>: no character may end the element or open a comment.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def iso_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def html_to_text(fragment: str) -> str:
    """Plain text of the renderer's sanitised HTML (tags dropped, entities decoded, spaces folded)."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", fragment))).strip()


def message_url(post: BlogPost, item: ThreadedComment) -> str | None:
    """The comment's message in Discord, when it came from the post's (live) thread."""
    if item.comment.origin != "discord" or post.thread_url is None or item.comment.message_id < 0:
        return None
    return f"{post.thread_url}/{item.comment.message_id}"


def _all_comments(discussion: Discussion) -> Iterator[ThreadedComment]:
    for item in discussion.comments:
        yield item
        yield from item.replies


def discussion_json_ld(discussion: Discussion, *, page_path: str) -> dict[str, Any]:
    """A ``DiscussionForumPosting`` whose ``comment`` lists every shown comment (replies name their
    parent through ``parentItem``; a comment's ``@id`` is its anchor on the /p/ page)."""
    post = discussion.post
    shown = [item for item in _all_comments(discussion) if not item.comment.deleted]
    shown_ids = {item.comment.message_id for item in shown}
    comments: list[dict[str, Any]] = []
    for item in shown:
        comment = item.comment
        entry: dict[str, Any] = {
            "@type": "Comment",
            "@id": f"{page_path}#c{comment.message_id}",
            "text": html_to_text(item.html),
            "author": {"@type": "Person", "name": comment.author_name},
            "dateCreated": iso_time(comment.created_at),
        }
        if comment.edited_at is not None:
            entry["dateModified"] = iso_time(comment.edited_at)
        link = message_url(post, item)
        if link is not None:
            entry["url"] = link
        if comment.reply_to is not None and comment.reply_to in shown_ids and not item.reply_to_removed:
            entry["parentItem"] = {"@id": f"{page_path}#c{comment.reply_to}"}
        comments.append(entry)
    document: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "DiscussionForumPosting",
        "@id": page_path,
        "headline": post.title,
        "datePublished": iso_time(post.published_at),
        "commentCount": discussion.comment_count,
        "interactionStatistic": {
            "@type": "InteractionCounter",
            "interactionType": "https://schema.org/CommentAction",
            "userInteractionCount": discussion.comment_count,
        },
        "comment": comments,
    }
    post_url = safe_url(post.canonical_url)
    if post_url is not None:
        document["url"] = post_url
    if post.author:
        document["author"] = {"@type": "Person", "name": post.author}
    return document


def json_ld_script(document: dict[str, Any]) -> str:
    """The ``<script type="application/ld+json">`` element; the JSON cannot close the element."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    for unsafe, escaped in _SCRIPT_UNSAFE.items():
        text = text.replace(unsafe, escaped)
    return f'<script type="application/ld+json">{text}</script>'


def sitemap_xml(base_url: str, pages: Sequence[DiscussionPage]) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for page in pages:
        lines.append(f"<url><loc>{xml_escape(f'{base_url}/p/{page.post_id}')}</loc>"
                     f"<lastmod>{iso_time(page.last_comment_at)}</lastmod></url>")
    lines.append("</urlset>\n")
    return "\n".join(lines).encode()
