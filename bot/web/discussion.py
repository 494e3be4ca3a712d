"""A post's discussion as the blog sees it: comments rendered to safe HTML, replies nested one
level (as giscus shows them), tombstones kept in place, and the JSON document of the API.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.render.discord_to_html import MentionNames, discord_markdown_to_html
from bot.storage import blog
from bot.storage.blog import BlogComment, BlogPost
from bot.storage.db import Database

API_VERSION = 1
RENDER_CACHE_SIZE = 20_000  # rendered comments kept in memory (a few MB at most)
_MENTION_ID = re.compile(r"<@!?(\d{1,25})>")
_CUSTOM_EMOJI = re.compile(r"^(?P<name>[A-Za-z0-9_~]{1,64}):(?P<id>\d{1,25})$")


@dataclass(slots=True)
class ThreadedComment:
    """One comment with its rendered HTML; top-level ones carry their replies."""

    comment: BlogComment
    html: str
    reply_to_name: str | None = None  # whom a nested reply answers, when not the top comment
    replies: list[ThreadedComment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Discussion:
    post: BlogPost
    comments: tuple[ThreadedComment, ...]
    comment_count: int  # visible comments that are not deleted


async def load_discussion(database: Database, post: BlogPost) -> Discussion:
    comments = await blog.discussion_comments(database, post.id)
    rendered = await render_comments(database, comments)
    return Discussion(post=post, comments=tuple(nest_one_level(comments, rendered)),
                      comment_count=sum(1 for comment in comments if not comment.deleted))


async def render_comments(database: Database, comments: Sequence[BlogComment]) -> dict[int, str]:
    """Each comment's HTML by message id; rendering runs in a thread (a long discussion takes a
    few hundred milliseconds the first time) and is cached by content and mentioned names."""
    mentioned = {int(match) for comment in comments for match in _MENTION_ID.findall(comment.content)}
    names = await blog.known_author_names(database, mentioned) if mentioned else {}
    return await asyncio.to_thread(_render_all, comments, names)


def _render_all(comments: Sequence[BlogComment], names: dict[int, str]) -> dict[int, str]:
    return {comment.message_id: render_comment(comment, names) for comment in comments}


def render_comment(comment: BlogComment, names: dict[int, str]) -> str:
    if comment.deleted or not comment.content.strip():
        return ""
    used = tuple(sorted({(int(found), names[int(found)]) for found in _MENTION_ID.findall(comment.content)
                         if int(found) in names}))
    return _cached_html(comment.content, used)


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def _cached_html(content: str, names: tuple[tuple[int, str], ...]) -> str:
    return discord_markdown_to_html(content, names=MentionNames(users=dict(names)))


def nest_one_level(comments: Sequence[BlogComment], rendered: dict[int, str]) -> list[ThreadedComment]:
    """Top-level comments in time order, each with every reply below it (flattened, in time order).

    A reply whose parent is not shown (hidden, opted out, or never stored) stands at the top
    level; a reply to a reply goes under the top comment of its chain, naming whom it answers.
    """
    by_id = {comment.message_id: comment for comment in comments}

    def root_of(comment: BlogComment) -> BlogComment:
        seen = {comment.message_id}
        current = comment
        while current.reply_to is not None and current.reply_to in by_id:
            if current.reply_to in seen:
                return comment  # a loop of replies (only possible in imported data): stand alone
            current = by_id[current.reply_to]
            seen.add(current.message_id)
        return current

    tops: dict[int, ThreadedComment] = {}
    ordered: list[ThreadedComment] = []
    for comment in comments:
        root = root_of(comment)
        if root.message_id == comment.message_id:
            item = ThreadedComment(comment=comment, html=rendered.get(comment.message_id, ""))
            tops[comment.message_id] = item
            ordered.append(item)
    for comment in comments:
        root = root_of(comment)
        if root.message_id == comment.message_id:
            continue
        parent = by_id[comment.reply_to] if comment.reply_to is not None else None
        answered = None
        if parent is not None and parent.message_id != root.message_id:
            answered = None if parent.deleted else parent.author_name
        tops[root.message_id].replies.append(ThreadedComment(
            comment=comment, html=rendered.get(comment.message_id, ""), reply_to_name=answered))
    return ordered


# ---------------------------------------------------------------------------------------------
# JSON


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def reaction_json(emoji: str, count: int) -> dict[str, Any]:
    custom = _CUSTOM_EMOJI.match(emoji)
    if custom:
        return {"emoji": f":{custom['name']}:", "name": custom["name"], "custom": True, "count": count}
    return {"emoji": emoji, "name": emoji, "custom": False, "count": count}


def comment_json(item: ThreadedComment, *, nested: bool) -> dict[str, Any]:
    comment = item.comment
    document: dict[str, Any] = {
        "id": str(comment.message_id),  # a string: snowflakes do not fit a JavaScript number
        "reply_to": None if comment.reply_to is None else str(comment.reply_to),
        "created_at": _time(comment.created_at),
        "deleted": comment.deleted,
        "origin": comment.origin,
    }
    if comment.deleted:
        document.update({"author": None, "edited": False, "edited_at": None, "html": "",
                         "reactions": [], "attachments": [], "links": []})
    else:
        document.update({
            "author": {"name": comment.author_name, "avatar_url": comment.author_avatar_url,
                       "bot": comment.is_bot},
            "edited": comment.edited_at is not None,
            "edited_at": _time(comment.edited_at),
            "html": item.html,
            "reactions": [reaction_json(r.emoji, r.count) for r in comment.reactions],
            "attachments": [
                {"filename": a.filename, "url": a.url, "size": a.size, "content_type": a.content_type,
                 "is_image": bool(a.content_type and a.content_type.startswith("image/"))}
                for a in comment.attachments
            ],
            "links": [{"kind": link.kind, "name": link.name, "url": link.url} for link in comment.links],
        })
    if nested:
        document["reply_to_name"] = item.reply_to_name
    else:
        document["replies"] = [comment_json(reply, nested=True) for reply in item.replies]
    return document


def post_json(post: BlogPost, *, page_path: str) -> dict[str, Any]:
    return {
        "id": post.id,
        "url": post.canonical_url,
        "title": post.title,
        "author": post.author,
        "published_at": _time(post.published_at),
        "page": page_path,
    }


def discussion_json(discussion: Discussion, *, invite_url: str | None) -> dict[str, Any]:
    post = discussion.post
    thread = None
    if post.thread_url is not None:
        thread = {"url": post.thread_url, "archived": post.thread_archived, "locked": post.thread_locked}
    return {
        "version": API_VERSION,
        "post": post_json(post, page_path=f"/p/{post.id}"),
        "thread": thread,
        "invite_url": invite_url,
        "comment_count": discussion.comment_count,
        "comments": [comment_json(item, nested=False) for item in discussion.comments],
    }
