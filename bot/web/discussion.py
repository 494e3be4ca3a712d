"""A post's discussion as the blog sees it: comments rendered to safe HTML, replies nested one
level (as giscus shows them), tombstones kept in place, and the JSON document of the API.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.render.discord_to_html import MentionNames, discord_markdown_to_html
from bot.storage import blog
from bot.storage.blog import BlogComment, BlogPost, BlogReaction
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
    reply_to_removed: bool = False  # it answers a comment that is hidden or by someone who opted out
    replies: list[ThreadedComment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Discussion:
    post: BlogPost
    comments: tuple[ThreadedComment, ...]
    comment_count: int  # visible comments that are not deleted


async def load_discussion(database: Database, post: BlogPost, *, public_only: bool = True) -> Discussion:
    comments = await blog.discussion_comments(database, post.id, public_only=public_only)
    removed = await blog.removed_comment_ids(database, post.id)
    rendered = await render_comments(database, comments)
    return Discussion(post=post, comments=tuple(nest_one_level(comments, rendered, removed)),
                      comment_count=sum(1 for comment in comments if not comment.deleted))


OPTED_OUT_NAME = "someone"


async def render_comments(database: Database, comments: Sequence[BlogComment]) -> dict[int, str]:
    """Each comment's HTML by message id; rendering runs in a thread (a long discussion takes a
    few hundred milliseconds the first time) and is cached by content and mentioned names.
    A mention of someone who opted out reads "@someone"."""
    mentioned = {int(match) for comment in comments for match in _MENTION_ID.findall(comment.content)}
    names = await blog.known_author_names(database, mentioned) if mentioned else {}
    for user_id in await blog.opted_out_among(database, mentioned) if mentioned else ():
        names[user_id] = OPTED_OUT_NAME
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


def nest_one_level(comments: Sequence[BlogComment], rendered: dict[int, str],
                   removed: Set[int] = frozenset()) -> list[ThreadedComment]:
    """Top-level comments in time order, each with every reply below it (flattened, in time order).

    A reply whose parent is not shown (hidden, opted out, or never stored) stands at the top
    level; a reply to a reply goes under the top comment of its chain, naming whom it answers.
    A reply to one of the ``removed`` comments (hidden or opted out) says only that.
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
            item = ThreadedComment(comment=comment, html=rendered.get(comment.message_id, ""),
                                   reply_to_removed=comment.reply_to is not None and comment.reply_to in removed)
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


def safe_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) link, else None: nothing else reaches a blog page."""
    if not url:
        return None
    text = url.strip()
    if text.lower().startswith(("https://", "http://")) and len(text) > 8 and not any(
            ch.isspace() or ord(ch) < 32 for ch in text):
        return text
    return None


def reaction_json(emoji: str, count: int) -> dict[str, Any]:
    custom = _CUSTOM_EMOJI.match(emoji)
    if custom:
        return {"emoji": f":{custom['name']}:", "name": custom["name"], "custom": True, "count": count}
    return {"emoji": emoji, "name": emoji, "custom": False, "count": count}


CUSTOM_EMOJI_IMAGE = "https://cdn.discordapp.com/emojis/{id}.png"
SUMMARY_TOP = 3


def reaction_summary_json(total: int, top: Sequence[BlogReaction]) -> dict[str, Any]:
    """Total reactions and the most used emoji (a custom one with its image URL), for listing
    pages and the widget's header: "12 comments · 👍 9 ❤️ 4"."""
    shown: list[dict[str, Any]] = []
    for reaction in top:
        item = reaction_json(reaction.emoji, reaction.count)
        custom = _CUSTOM_EMOJI.match(reaction.emoji)
        item["image_url"] = CUSTOM_EMOJI_IMAGE.format(id=custom["id"]) if custom else None
        shown.append(item)
    return {"total": total, "top": shown}


def discussion_reactions(discussion: Discussion) -> dict[str, Any]:
    """The reaction summary of a loaded discussion (its shown, not deleted comments)."""
    totals: dict[str, int] = {}
    for top in discussion.comments:
        for item in (top, *top.replies):
            if not item.comment.deleted:
                for reaction in item.comment.reactions:
                    totals[reaction.emoji] = totals.get(reaction.emoji, 0) + reaction.count
    ordered = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))[:SUMMARY_TOP]
    return reaction_summary_json(sum(totals.values()),
                                 [BlogReaction(emoji=emoji, count=count) for emoji, count in ordered])


def comment_json(item: ThreadedComment, *, nested: bool) -> dict[str, Any]:
    comment = item.comment
    # A reply to a hidden or opted-out comment does not point at it; it says a comment was removed.
    reply_to = None if comment.reply_to is None or item.reply_to_removed else str(comment.reply_to)
    document: dict[str, Any] = {
        "id": str(comment.message_id),  # a string: snowflakes do not fit a JavaScript number
        "reply_to": reply_to,
        "reply_to_removed": item.reply_to_removed,
        "created_at": _time(comment.created_at),
        "deleted": comment.deleted,
        "origin": comment.origin,
    }
    if comment.deleted:
        document.update({"author": None, "edited": False, "edited_at": None, "html": "",
                         "reactions": [], "attachments": [], "links": []})
    else:
        document.update({
            "author": {"name": comment.author_name, "avatar_url": safe_url(comment.author_avatar_url),
                       "bot": comment.is_bot},
            "edited": comment.edited_at is not None,
            "edited_at": _time(comment.edited_at),
            "html": item.html,
            "reactions": [reaction_json(r.emoji, r.count) for r in comment.reactions],
            "attachments": [
                {"filename": a.filename, "url": a.url, "size": a.size, "content_type": a.content_type,
                 "is_image": bool(a.content_type and a.content_type.startswith("image/"))}
                for a in comment.attachments if safe_url(a.url)
            ],
            "links": [{"kind": link.kind, "name": link.name, "url": link.url} for link in comment.links
                      if safe_url(link.url)],
        })
    if nested:
        document["reply_to_name"] = item.reply_to_name
    else:
        document["replies"] = [comment_json(reply, nested=True) for reply in item.replies]
    return document


def post_json(post: BlogPost, *, page_path: str) -> dict[str, Any]:
    return {
        "id": post.id,
        "url": safe_url(post.canonical_url),
        "title": post.title,
        "author": post.author,
        "published_at": _time(post.published_at),
        "page": page_path,
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class EncodedDiscussion:
    """A discussion's API document, encoded once per post version and cut into pages on request.

    Each top-level comment (with its replies) is encoded on its own, so a page is the head, a join
    of encoded comments and a tail: no per-request JSON encoding of comments.
    """

    head: bytes  # '{"version":1,...,"comments":['
    items: tuple[bytes, ...]  # one per top-level comment, replies included
    weights: tuple[int, ...]  # how many comments each item holds (1 + replies)
    ids: tuple[str, ...]  # the top-level comments' ids, the ``after`` cursors
    positions: dict[str, int]
    # The page nearly every reader asks for (no cursor, the default limit), joined once: serving it
    # is then a reference to these bytes, no join or thread hop per request.
    first_bounds: tuple[int, int]
    first_page: bytes
    size: int  # bytes held, counted once (summing 3,000 items per request showed in the profile)

    def page_bounds(self, after: str | None, limit: int) -> tuple[int, int] | None:
        """The items of the page after top-level comment ``after`` holding about ``limit`` comments
        (whole top-level comments with their replies, at least one); None for an unknown cursor."""
        start = 0
        if after is not None:
            position = self.positions.get(after)
            if position is None:
                return None
            start = position + 1
        return start, _page_end(self.weights, start, limit)

    def page(self, start: int, end: int) -> bytes:
        if (start, end) == self.first_bounds:
            return self.first_page
        return _join_page(self.head, self.items, self.ids, start, end)


def encode_discussion(discussion: Discussion, *, invite_url: str | None, page_limit: int) -> EncodedDiscussion:
    """CPU work for a thread: a discussion of 3,000 comments takes tens of milliseconds."""
    post = discussion.post
    thread = None
    if post.thread_url is not None:
        thread = {"url": post.thread_url, "archived": post.thread_archived, "locked": post.thread_locked}
    head = _encode({
        "version": API_VERSION,
        "post": post_json(post, page_path=f"/p/{post.id}"),
        "thread": thread,
        "invite_url": safe_url(invite_url),
        "comment_count": discussion.comment_count,
        "reactions": discussion_reactions(discussion),
    })
    ids = tuple(str(item.comment.message_id) for item in discussion.comments)
    items = tuple(_encode(comment_json(item, nested=False)) for item in discussion.comments)
    weights = tuple(1 + len(item.replies) for item in discussion.comments)
    first_end = _page_end(weights, 0, page_limit)
    head_bytes = head[:-1] + b',"comments":['
    first_page = _join_page(head_bytes, items, ids, 0, first_end)
    return EncodedDiscussion(
        head=head_bytes, items=items, weights=weights,
        ids=ids, positions={comment_id: index for index, comment_id in enumerate(ids)},
        first_bounds=(0, first_end), first_page=first_page,
        size=len(head_bytes) + sum(len(item) for item in items) + len(first_page))


def _page_end(weights: tuple[int, ...], start: int, limit: int) -> int:
    end, taken = start, 0
    while end < len(weights) and (taken == 0 or taken + weights[end] <= limit):
        taken += weights[end]
        end += 1
    return end


def _join_page(head: bytes, items: tuple[bytes, ...], ids: tuple[str, ...], start: int, end: int) -> bytes:
    next_after = ids[end - 1] if end < len(items) else None
    return b"".join((head, b",".join(items[start:end]), b'],"next_after":', _encode(next_after), b"}"))
