"""All SQL of the blog side: a post's discussion for the web API, comment counts, the health
figures, the rows an export needs, and the write that stores imported comments.

Visibility rules live here, once: comments a moderator hid (``hidden = 1``) and comments by users
who opted out (``user_privacy.opted_out = 1``) are never returned for the blog; deleted comments
(``deleted_at`` set) come back as tombstones without content so replies keep their place.
With ``public_only`` (the web server, unless ``WEB_INCLUDE_PRIVATE``), only discussions whose thread
is in a channel @everyone can view are returned (``channel_visibility``; unknown = private).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.model.ids import fits_sqlite
from bot.storage.db import Database, WriteOp, from_db_time, to_db_time
from bot.storage.sql import DATABASE_ERRORS, Connection, Row

_NOT_OPTED_OUT = (
    "(c.author_id IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM user_privacy p WHERE p.user_id = c.author_id AND p.opted_out = 1))"
)
# A comment is shown on the blog unless hidden or written by someone who opted out.
_SHOWN_ON_BLOG = "c.hidden = 0 AND " + _NOT_OPTED_OUT
# A post is served publicly when its thread (live or deleted) is in a channel known to be public, or
# when it has no thread at all but comments imported from the blog's old comment system.
_PUBLIC_POST = (
    "(EXISTS (SELECT 1 FROM threads pt JOIN channel_visibility v ON v.channel_id = pt.parent_channel_id "
    "AND v.public = 1 WHERE pt.post_id = p.id) OR (NOT EXISTS (SELECT 1 FROM threads pt WHERE pt.post_id = p.id) "
    "AND EXISTS (SELECT 1 FROM comments ic WHERE ic.post_id = p.id AND ic.thread_id IS NULL)))"
)
# A comment captured in Discord is served publicly only from a thread of a public channel.
_PUBLIC_COMMENT = (
    "(c.thread_id IS NULL OR EXISTS (SELECT 1 FROM threads ct JOIN channel_visibility v "
    "ON v.channel_id = ct.parent_channel_id AND v.public = 1 WHERE ct.thread_id = c.thread_id))"
)
# SQLite's default limit of host parameters is 999 (older builds); stay well under it.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class BlogPost:
    id: int
    guild_id: int
    canonical_url: str
    guid: str | None
    title: str
    author: str | None
    summary: str
    published_at: datetime
    image_url: str | None
    thread_id: int | None  # None when the post has no live Discord thread
    thread_guild_id: int | None
    thread_archived: bool
    thread_locked: bool
    version: int = 0  # bumped by triggers on every change the blog would show (migration 0003)

    @property
    def thread_url(self) -> str | None:
        if self.thread_id is None or self.thread_guild_id is None:
            return None
        return f"https://discord.com/channels/{self.thread_guild_id}/{self.thread_id}"


@dataclass(frozen=True, slots=True)
class BlogAttachment:
    filename: str
    url: str
    size: int
    content_type: str | None


@dataclass(frozen=True, slots=True)
class BlogReaction:
    emoji: str  # unicode emoji, or name:id for a custom one
    count: int


@dataclass(frozen=True, slots=True)
class BlogLink:
    """A sticker or link embed kept with a comment."""

    kind: str
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class BlogComment:
    message_id: int
    post_id: int
    author_id: int | None
    author_name: str
    author_avatar_url: str | None
    is_bot: bool
    content: str  # Discord markdown ("" for a tombstone)
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    hidden: bool
    reply_to: int | None
    origin: str
    origin_key: str | None
    attachments: tuple[BlogAttachment, ...] = ()
    reactions: tuple[BlogReaction, ...] = ()
    links: tuple[BlogLink, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedHealth:
    total: int
    failing: int  # polled with errors lately, still enabled
    disabled: int
    paused: int


# ---------------------------------------------------------------------------------------------
# Posts

_POST_SELECT = (
    "SELECT p.id, p.guild_id, p.canonical_url, p.guid, p.title, p.author, p.summary, p.published_at, "
    "p.image_url, p.version, t.thread_id, t.guild_id AS thread_guild_id, t.archived, t.locked "
    "FROM posts p LEFT JOIN threads t ON t.post_id = p.id AND t.deleted_at IS NULL "
)
# When several guilds follow the same blog, the post with a live thread wins, then the oldest row.
_POST_PREFERENCE = "ORDER BY (t.thread_id IS NULL), p.id"


def _post(row: Row) -> BlogPost:
    published = from_db_time(row["published_at"])
    assert published is not None
    return BlogPost(
        id=int(row["id"]), guild_id=int(row["guild_id"]), canonical_url=str(row["canonical_url"]),
        guid=row["guid"], title=str(row["title"]), author=row["author"], summary=str(row["summary"]),
        published_at=published, image_url=row["image_url"],
        thread_id=None if row["thread_id"] is None else int(row["thread_id"]),
        thread_guild_id=None if row["thread_guild_id"] is None else int(row["thread_guild_id"]),
        thread_archived=bool(row["archived"]), thread_locked=bool(row["locked"]), version=int(row["version"]),
    )


def _served(public_only: bool) -> str:
    return f"AND {_PUBLIC_POST} " if public_only else ""


async def post_by_url(database: Database, canonical_url: str, *, public_only: bool = False) -> BlogPost | None:
    # fetch_all: one hop to the reader thread (a cursor takes three); this runs for every API request.
    rows = await database.fetch_all(
        _POST_SELECT + "WHERE p.canonical_url = ? " + _served(public_only) + _POST_PREFERENCE + " LIMIT 1",
        (canonical_url,))
    return _post(rows[0]) if rows else None


async def post_by_guid(database: Database, guid: str) -> BlogPost | None:
    row = await database.fetch_one(
        _POST_SELECT + "WHERE p.guid = ? " + _POST_PREFERENCE + " LIMIT 1", (guid,))
    return None if row is None else _post(row)


async def post_by_id(database: Database, post_id: int, *, public_only: bool = False) -> BlogPost | None:
    rows = await database.fetch_all(_POST_SELECT + "WHERE p.id = ? " + _served(public_only), (post_id,))
    return _post(rows[0]) if rows else None


async def all_posts(database: Database) -> list[BlogPost]:
    """Every post, oldest first (one row per URL: the preferred guild's)."""
    rows = await database.fetch_all(_POST_SELECT + "ORDER BY p.published_at, p.id")
    seen: set[str] = set()
    posts: list[BlogPost] = []
    for row in sorted(rows, key=lambda r: (r["thread_id"] is None, r["id"])):
        if row["canonical_url"] not in seen:
            seen.add(row["canonical_url"])
            posts.append(_post(row))
    posts.sort(key=lambda post: (post.published_at, post.id))
    return posts


# ---------------------------------------------------------------------------------------------
# Comments


async def discussion_comments(database: Database, post_id: int, *, include_hidden: bool = False,
                              public_only: bool = False) -> list[BlogComment]:
    """A post's comments in time order, with their attachments, reactions and links.

    Opted-out authors are always left out; hidden comments only come back for an export
    (``include_hidden``). Deleted comments come back as tombstones (no content, no extras).
    """
    where = _NOT_OPTED_OUT if include_hidden else _SHOWN_ON_BLOG
    if public_only:
        where += f" AND {_PUBLIC_COMMENT}"
    rows = await database.fetch_all(
        "SELECT c.message_id, c.post_id, c.author_id, c.author_name, c.author_avatar_url, c.is_bot, "
        "c.content, c.extras, c.created_at, c.edited_at, c.deleted_at, c.hidden, c.reply_to, c.origin, "
        f"c.origin_key FROM comments c WHERE c.post_id = ? AND {where} "
        "ORDER BY c.created_at, c.message_id",
        (post_id,),
    )
    live_ids = [int(row["message_id"]) for row in rows if row["deleted_at"] is None]
    attachments: dict[int, list[BlogAttachment]] = {}
    reactions: dict[int, list[BlogReaction]] = {}
    for chunk in _chunks(live_ids):
        marks = ",".join("?" * len(chunk))
        for row in await database.fetch_all(
                f"SELECT message_id, filename, url, size, content_type FROM attachments "
                f"WHERE message_id IN ({marks}) ORDER BY message_id, id", chunk):
            attachments.setdefault(int(row["message_id"]), []).append(BlogAttachment(
                filename=str(row["filename"]), url=str(row["url"]), size=int(row["size"]),
                content_type=row["content_type"]))
        for row in await database.fetch_all(
                f"SELECT message_id, emoji, count FROM reactions WHERE message_id IN ({marks}) "
                "ORDER BY message_id, count DESC, emoji", chunk):
            reactions.setdefault(int(row["message_id"]), []).append(
                BlogReaction(emoji=str(row["emoji"]), count=int(row["count"])))
    comments: list[BlogComment] = []
    for row in rows:
        message_id = int(row["message_id"])
        deleted = row["deleted_at"] is not None
        created = from_db_time(row["created_at"])
        assert created is not None
        comments.append(BlogComment(
            message_id=message_id, post_id=int(row["post_id"]),
            author_id=None if row["author_id"] is None else int(row["author_id"]),
            author_name=str(row["author_name"]), author_avatar_url=row["author_avatar_url"],
            is_bot=bool(row["is_bot"]), content="" if deleted else str(row["content"]),
            created_at=created, edited_at=from_db_time(row["edited_at"]), deleted=deleted,
            hidden=bool(row["hidden"]),
            reply_to=None if row["reply_to"] is None else int(row["reply_to"]),
            origin=str(row["origin"]), origin_key=row["origin_key"],
            attachments=tuple(attachments.get(message_id, ())),
            reactions=tuple(reactions.get(message_id, ())),
            links=() if deleted else _links(row["extras"]),
        ))
    return comments


def _links(raw: str | None) -> tuple[BlogLink, ...]:
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(BlogLink(kind=str(item.get("kind", "")), name=str(item.get("name", "")),
                          url=str(item.get("url", "")))
                 for item in items if isinstance(item, dict))


async def known_author_names(database: Database, author_ids: Iterable[int]) -> dict[int, str]:
    """The latest name each id wrote comments under (for mentions); opted-out users stay unknown."""
    names: dict[int, str] = {}
    # Ids come from mentions in comment text, which anyone can type: one SQLite cannot hold is unknown.
    for chunk in _chunks(sorted({author_id for author_id in author_ids if fits_sqlite(author_id)})):
        marks = ",".join("?" * len(chunk))
        # Each author's newest name.
        rows = await database.fetch_all(
            "SELECT author_id, author_name FROM (SELECT c.author_id, c.author_name, row_number() OVER "
            "(PARTITION BY c.author_id ORDER BY c.created_at DESC) AS newest FROM comments c "
            f"WHERE c.author_id IN ({marks}) AND {_NOT_OPTED_OUT}) AS named WHERE newest = 1", chunk)
        for row in rows:
            names[int(row["author_id"])] = str(row["author_name"])
    return names


async def removed_comment_ids(database: Database, post_id: int) -> set[int]:
    """A post's comments that are not shown (hidden, or by someone who opted out): replies to them
    say "a removed comment" instead of pointing at them."""
    rows = await database.fetch_all(
        f"SELECT c.message_id FROM comments c WHERE c.post_id = ? AND NOT ({_SHOWN_ON_BLOG})", (post_id,))
    return {int(row["message_id"]) for row in rows}


async def opted_out_among(database: Database, user_ids: Iterable[int]) -> set[int]:
    """Which of these users opted out (their mentions show as "@someone")."""
    found: set[int] = set()
    for chunk in _chunks(sorted({user_id for user_id in user_ids if fits_sqlite(user_id)})):
        marks = ",".join("?" * len(chunk))
        rows = await database.fetch_all(
            f"SELECT user_id FROM user_privacy WHERE opted_out = 1 AND user_id IN ({marks})", chunk)
        found.update(int(row["user_id"]) for row in rows)
    return found


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """The reactions on a post's shown comments: the total and the most used emoji (most first)."""

    total: int
    top: tuple[BlogReaction, ...]


@dataclass(frozen=True, slots=True)
class ListingFigures:
    """What a blog's listing page shows of a post: "12 comments · 👍 9 ❤️ 4"."""

    comments: int  # visible, not deleted
    reactions: ReactionSummary


async def posts_by_urls(database: Database, canonical_urls: Sequence[str], *,
                        public_only: bool = False) -> dict[str, tuple[int, int]]:
    """The post (id, version) each known URL stands for; when several guilds follow the blog, the one
    with a live thread, then the oldest. Unknown URLs are absent."""
    found: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(list(dict.fromkeys(canonical_urls))):
        marks = ",".join("?" * len(chunk))
        rows = await database.fetch_all(
            "SELECT p.canonical_url, p.id, p.version, EXISTS (SELECT 1 FROM threads t WHERE t.post_id = p.id "
            f"AND t.deleted_at IS NULL) AS threaded FROM posts p WHERE p.canonical_url IN ({marks}) "
            f"{_served(public_only)}ORDER BY threaded DESC, p.id", chunk)
        for row in rows:
            found.setdefault(str(row["canonical_url"]), (int(row["id"]), int(row["version"])))
    return found


async def listing_figures(database: Database, post_id: int, *, top: int = 3,
                          public_only: bool = False) -> ListingFigures:
    """The post's visible, not deleted comments and the reactions on them."""
    visible = f"{_SHOWN_ON_BLOG} AND {_PUBLIC_COMMENT}" if public_only else _SHOWN_ON_BLOG
    count = await database.fetch_value(
        f"SELECT count(*) FROM comments c WHERE c.post_id = ? AND c.deleted_at IS NULL AND {visible}", (post_id,))
    rows = await database.fetch_all(
        "SELECT r.emoji, sum(r.count) AS n FROM reactions r JOIN comments c ON c.message_id = r.message_id "
        f"WHERE c.post_id = ? AND c.deleted_at IS NULL AND {visible} GROUP BY r.emoji ORDER BY n DESC, r.emoji",
        (post_id,))
    reactions = [BlogReaction(emoji=str(row["emoji"]), count=int(row["n"])) for row in rows]
    return ListingFigures(comments=int(count or 0), reactions=ReactionSummary(
        total=sum(reaction.count for reaction in reactions), top=tuple(reactions[:top])))


async def site_version(database: Database) -> int:
    """Changes whenever any post's discussion changes (every write bumps a post's version), for
    the site-wide caches (comment feed, sitemap); posts are never deleted in normal operation."""
    row = await database.fetch_one("SELECT count(*) AS n, coalesce(sum(version), 0) AS total FROM posts")
    assert row is not None
    return (int(row["n"]) << 40) + int(row["total"])


@dataclass(frozen=True, slots=True)
class DiscussionPage:
    """A post's /p/ page for the sitemap: lastmod is its latest shown comment."""

    post_id: int
    last_comment_at: datetime


SITEMAP_MAX_URLS = 50_000  # the sitemap protocol's limit per file


async def discussions_with_comments(database: Database, *, public_only: bool = False) -> list[DiscussionPage]:
    visible = f"{_SHOWN_ON_BLOG} AND {_PUBLIC_COMMENT}" if public_only else _SHOWN_ON_BLOG
    rows = await database.fetch_all(
        "SELECT p.id, max(c.created_at) AS last FROM posts p JOIN comments c ON c.post_id = p.id "
        f"WHERE c.deleted_at IS NULL AND {visible} {_served(public_only)}"
        "GROUP BY p.id ORDER BY last DESC LIMIT ?", (SITEMAP_MAX_URLS,))
    pages: list[DiscussionPage] = []
    for row in rows:
        last = from_db_time(row["last"])
        assert last is not None
        pages.append(DiscussionPage(post_id=int(row["id"]), last_comment_at=last))
    return pages


@dataclass(frozen=True, slots=True)
class RecentComment:
    """A shown comment with what a site-wide feed entry needs of its post."""

    comment: BlogComment
    post_id: int
    post_title: str
    post_url: str
    message_url: str | None  # the message in Discord (None for an imported comment)
    text: str = ""  # plain text (the search copy)


_RECENT_SELECT = (
    "SELECT c.message_id, c.post_id, c.thread_id, c.author_id, c.author_name, c.content, c.clean_content, "
    "c.created_at, c.edited_at, c.deleted_at, c.reply_to, c.origin, c.origin_key, p.title, p.canonical_url, "
    "t.guild_id AS thread_guild FROM comments c JOIN posts p ON p.id = c.post_id "
    "LEFT JOIN threads t ON t.thread_id = c.thread_id "
)


async def recent_comments(database: Database, *, limit: int, public_only: bool = False) -> list[RecentComment]:
    """The newest visible, not deleted comments of the whole site, newest first."""
    visible = f"{_SHOWN_ON_BLOG} AND {_PUBLIC_COMMENT}" if public_only else _SHOWN_ON_BLOG
    rows = await database.fetch_all(
        _RECENT_SELECT + f"WHERE c.deleted_at IS NULL AND {visible} {_served(public_only)}"
        "ORDER BY c.created_at DESC, c.message_id DESC LIMIT ?", (limit,))
    return [_recent(row) for row in rows]


async def shown_comment(database: Database, message_id: int, *, public_only: bool = False) -> RecentComment | None:
    """One comment as the blog may show it (a deleted one as a tombstone), or None when it is hidden,
    by someone who opted out, or (``public_only``) not in a public discussion."""
    visible = f"{_SHOWN_ON_BLOG} AND {_PUBLIC_COMMENT}" if public_only else _SHOWN_ON_BLOG
    rows = await database.fetch_all(
        _RECENT_SELECT + f"WHERE c.message_id = ? AND {visible} {_served(public_only)}", (message_id,))
    return _recent(rows[0]) if rows else None


def _recent(row: Row) -> RecentComment:
    created = from_db_time(row["created_at"])
    assert created is not None
    deleted = row["deleted_at"] is not None
    comment = BlogComment(
        message_id=int(row["message_id"]), post_id=int(row["post_id"]),
        author_id=None if row["author_id"] is None else int(row["author_id"]),
        author_name=str(row["author_name"]), author_avatar_url=None, is_bot=False,
        content="" if deleted else str(row["content"]), created_at=created, edited_at=from_db_time(row["edited_at"]),
        deleted=deleted, hidden=False, reply_to=None if row["reply_to"] is None else int(row["reply_to"]),
        origin=str(row["origin"]), origin_key=row["origin_key"])
    message_url = None
    if row["thread_id"] is not None and row["thread_guild"] is not None:
        message_url = message_link(int(row["thread_guild"]), int(row["thread_id"]), comment.message_id)
    return RecentComment(comment=comment, post_id=comment.post_id, post_title=str(row["title"]),
                         post_url=str(row["canonical_url"]), message_url=message_url,
                         text="" if deleted else str(row["clean_content"]))


def message_link(guild_id: int, thread_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{thread_id}/{message_id}"


def _chunks(values: Sequence[int] | Sequence[str]) -> Iterable[list[object]]:
    items: list[object] = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


# ---------------------------------------------------------------------------------------------
# Health


async def database_ok(database: Database) -> bool:
    try:
        return bool(await database.fetch_value("SELECT 1") == 1)
    except DATABASE_ERRORS:
        return False


async def feed_health(database: Database) -> FeedHealth:
    row = await database.fetch_one(
        "SELECT count(*) AS total, "
        "count(*) FILTER (WHERE consecutive_failures > 0 AND disabled_reason IS NULL AND paused = 0) AS failing, "
        "count(*) FILTER (WHERE disabled_reason IS NOT NULL) AS disabled, "
        "count(*) FILTER (WHERE paused != 0 AND disabled_reason IS NULL) AS paused FROM feeds")
    assert row is not None
    return FeedHealth(total=int(row["total"]), failing=int(row["failing"]), disabled=int(row["disabled"]),
                      paused=int(row["paused"]))


# ---------------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True, slots=True)
class ImportedComment:
    """A comment from an old comment system, ready to store under a post."""

    origin: str  # 'wxr' or 'disqus'
    origin_key: str  # unique within the origin: re-importing the same key adds nothing
    parent_key: str | None  # origin_key of the comment it answers
    author_name: str
    content: str  # Discord markdown, as the widget renders every comment
    clean_content: str  # plain text for search
    created_at: datetime
    deleted: bool = False
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    added: int
    already_present: int


def parents_first(comments: Sequence[ImportedComment]) -> list[ImportedComment]:
    """The comments reordered so that a parent always comes before its replies (otherwise in the
    given order). Ids are allocated in this order, so |id| grows from parent to reply, which is
    what WordPress's importer needs from an export (it links replies in comment-id order)."""
    return [comments[position] for position in
            parents_first_order([(comment.origin_key, comment.parent_key) for comment in comments])]


def parents_first_order(keys: Sequence[tuple[str, str | None]]) -> list[int]:
    """The positions of ``(key, parent key)`` pairs in :func:`parents_first` order."""
    position = {key: index for index, (key, _) in reversed(list(enumerate(keys)))}
    placed: set[int] = set()
    ordered: list[int] = []
    for start in range(len(keys)):
        chain: list[int] = []
        seen: set[int] = set()
        current: int | None = start
        while current is not None and current not in placed and current not in seen:
            chain.append(current)
            seen.add(current)
            parent = keys[current][1]
            current = position.get(parent) if parent is not None else None
        for index in reversed(chain):
            placed.add(index)
            ordered.append(index)
    return ordered


def store_imported_comments(post_id: int, comments: Sequence[ImportedComment]) -> WriteOp[ImportOutcome]:
    """A write of :func:`insert_imported_comments`, parents first."""

    def op(connection: Connection) -> ImportOutcome:
        return insert_imported_comments(connection, post_id, parents_first(comments))

    return op


def insert_imported_comments(connection: Connection, post_id: int,
                             comments: Iterable[ImportedComment]) -> ImportOutcome:
    """Insert the comments that are not stored yet, with negative message ids, then link replies.

    Ids are allocated in the given order (give parents first). Replies are linked in a second pass
    so a reply may come before its parent; a parent that is not in the database (skipped as spam,
    say) leaves the reply at the top level. Only keys are kept, so ``comments`` may be a stream.
    """
    lowest = connection.execute("SELECT min(message_id) FROM comments").fetchone()[0]
    next_id = min(int(lowest or 0), 0) - 1
    seen = 0
    added: list[tuple[str, str, str | None]] = []  # origin, key, parent key
    ids: dict[tuple[str, str], int] = {}
    for comment in comments:
        seen += 1
        existing = connection.execute(
            "SELECT message_id FROM comments WHERE origin = ? AND origin_key = ?",
            (comment.origin, comment.origin_key)).fetchone()
        if existing is not None:
            ids[(comment.origin, comment.origin_key)] = int(existing[0])
            continue
        created = to_db_time(comment.created_at)
        connection.execute(
            "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, is_bot, "
            "content, clean_content, created_at, deleted_at, hidden, origin, origin_key) "
            "VALUES (?, ?, NULL, NULL, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
            (next_id, post_id, comment.author_name,
             "" if comment.deleted else comment.content,
             "" if comment.deleted else comment.clean_content,
             created, created if comment.deleted else None, int(comment.hidden),
             comment.origin, comment.origin_key))
        ids[(comment.origin, comment.origin_key)] = next_id
        added.append((comment.origin, comment.origin_key, comment.parent_key))
        next_id -= 1
    for origin, key, parent_key in added:
        if parent_key is None:
            continue
        parent = ids.get((origin, parent_key))
        if parent is None:
            row = connection.execute(
                "SELECT message_id FROM comments WHERE origin = ? AND origin_key = ? AND post_id = ?",
                (origin, parent_key, post_id)).fetchone()
            parent = None if row is None else int(row[0])
        if parent is not None:
            connection.execute("UPDATE comments SET reply_to = ? WHERE message_id = ?",
                               (parent, ids[(origin, key)]))
    return ImportOutcome(added=len(added), already_present=seen - len(added))
