"""Every read the lookup commands make: search, latest posts, post details, comment pages, stats,
title autocomplete. All of it runs on the READ connection, so a search never holds a write back.

Search ranks only a bounded set of the newest matches: FTS5 walks a term's doclist newest-first
cheaply (rowids are post ids and message snowflakes, i.e. time order), while ``ORDER BY rank``
over every match of a common word scores hundreds of thousands of rows. So a search first finds
the rowid of the N-th newest match in the guild, then ranks only matches at or above it, then
fetches snippets for the few rows it shows. Posts, few, are ranked with FTS5's bm25(); comments
are ranked by the caller (``bot.lookup.search``) from the candidates and term counts read here
(FTS5's bm25() walks each term's whole doclist for its IDF, which alone costs 20-85 ms for common
words at a million comments). The caller builds the FTS5 MATCH expressions.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from bot.model.discord_ids import snowflake_floor
from bot.model.messages import ReactionCount
from bot.storage.db import BUSY_TIMEOUT_MS, Database, from_db_time, to_db_time
from bot.storage.readonly import connect_read_only
from bot.storage.sql import Row

RANKED_WINDOW = 300          # how many of the newest matches are ranked
IDF_SAMPLE = 2000            # how many of the newest comments estimate term weights
SNIPPET_START = "\x02"       # snippet() markers; control characters never occur in stored text
SNIPPET_END = "\x03"
SNIPPET_TOKENS = 16
AUTOCOMPLETE_LIMIT = 25
PARTICIPANTS_SHOWN = 10      # names in a post's details
TOP_REACTIONS_SHOWN = 5
# The lowest rowid there is: the ranked window starts there when a search has fewer matches.
_LOWEST_ROWID = -(2 ** 63)

NOT_DELETED_OR_HIDDEN = "c.deleted_at IS NULL AND c.hidden = 0"
_COMMENT_COUNT = (
    "(SELECT count(*) FROM comments c WHERE c.post_id = p.id AND " + NOT_DELETED_OR_HIDDEN + ")"
)


@dataclass(frozen=True, slots=True)
class PostSummary:
    post_id: int
    guild_id: int
    title: str
    url: str
    published_at: datetime | None
    thread_id: int | None
    comment_count: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    kind: Literal["post", "comment"]
    post: PostSummary
    snippet: str                 # raw snippet text with SNIPPET_START/SNIPPET_END around matches
    message_id: int | None       # the matching comment
    author_name: str | None
    score: float


@dataclass(frozen=True, slots=True)
class SearchResults:
    posts: tuple[SearchHit, ...]
    comments: tuple[SearchHit, ...]
    more_posts: bool             # more post matches exist than are shown
    more_comments: bool


@dataclass(frozen=True, slots=True)
class PostDetails:
    post: PostSummary
    author: str | None
    summary: str
    participant_count: int
    participant_names: tuple[str, ...]
    last_activity: datetime | None
    top_reactions: tuple[ReactionCount, ...]


@dataclass(frozen=True, slots=True)
class CommentView:
    message_id: int
    author_name: str
    is_bot: bool
    text: str
    created_at: datetime | None
    edited: bool
    attachment_count: int


@dataclass(frozen=True, slots=True)
class CommentPage:
    post: PostSummary
    comments: tuple[CommentView, ...]
    page: int                    # 1-based, clamped to the pages that exist
    page_count: int
    total: int


@dataclass(frozen=True, slots=True)
class CommenterCount:
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class DiscussedPost:
    post: PostSummary
    comments_in_period: int


@dataclass(frozen=True, slots=True)
class GuildStats:
    posts: int
    comments: int
    participants: int
    since: datetime
    most_discussed: tuple[DiscussedPost, ...]
    top_commenters: tuple[CommenterCount, ...]


@dataclass(frozen=True, slots=True)
class TitleChoice:
    post_id: int
    title: str


async def _rows(database: Database, sql: str, parameters: tuple[object, ...] = ()) -> list[Row]:
    return await database.fetch_all(sql, parameters)


async def _row(database: Database, sql: str, parameters: tuple[object, ...] = ()) -> Row | None:
    rows = await _rows(database, sql, parameters)
    return rows[0] if rows else None


POST_COLUMNS = (
    "p.id, p.guild_id, p.title, p.canonical_url, p.published_at, "
    "CASE WHEN t.deleted_at IS NULL THEN t.thread_id END AS thread_id, "
    + _COMMENT_COUNT + " AS comment_count"
)


def post_summary(row: Row) -> PostSummary:
    return PostSummary(
        post_id=int(row["id"]), guild_id=int(row["guild_id"]), title=str(row["title"]),
        url=str(row["canonical_url"]), published_at=from_db_time(row["published_at"]),
        thread_id=row["thread_id"], comment_count=int(row["comment_count"]),
    )


async def latest_posts(database: Database, guild_id: int, count: int) -> list[PostSummary]:
    # The newest ids first (index only), so comment counts are computed for the shown posts only.
    rows = await _rows(database,
        f"SELECT {POST_COLUMNS} FROM (SELECT id FROM posts WHERE guild_id = ? "
        "ORDER BY published_at DESC, id DESC LIMIT ?) AS newest JOIN posts p ON p.id = newest.id "
        "LEFT JOIN threads t ON t.post_id = p.id ORDER BY p.published_at DESC, p.id DESC",
        (guild_id, count),
    )
    return [post_summary(row) for row in rows]


async def get_post(database: Database, guild_id: int, post_id: int) -> PostSummary | None:
    row = await _row(database,
        f"SELECT {POST_COLUMNS} FROM posts p LEFT JOIN threads t ON t.post_id = p.id "
        "WHERE p.guild_id = ? AND p.id = ?",
        (guild_id, post_id),
    )
    return None if row is None else post_summary(row)


async def search_posts(database: Database, guild_id: int, expression: str,
                       limit: int) -> tuple[list[SearchHit], bool]:
    """The best ``limit`` posts (title and summary) matching the FTS5 ``expression`` among the
    newest RANKED_WINDOW matches, and whether more matched."""
    ranked = await _rows(database,
        "SELECT f.rowid AS rowid, bm25(posts_fts, 4.0, 1.0) AS score "
        "FROM posts_fts f CROSS JOIN posts p ON p.id = f.rowid "
        "WHERE f.posts_fts MATCH ?1 AND p.guild_id = ?2 AND f.rowid >= coalesce(("
        "  SELECT w.rowid FROM posts_fts w CROSS JOIN posts wp ON wp.id = w.rowid"
        "  WHERE w.posts_fts MATCH ?1 AND wp.guild_id = ?2 ORDER BY w.rowid DESC LIMIT 1 OFFSET ?3"
        "), ?4) ORDER BY score LIMIT ?5",
        (expression, guild_id, RANKED_WINDOW - 1, _LOWEST_ROWID, limit + 1),
    )
    more = len(ranked) > limit
    ranked = ranked[:limit]
    if not ranked:
        return [], False
    scores = {int(row["rowid"]): float(row["score"]) for row in ranked}
    marks = ",".join("?" * len(scores))
    rows = await _rows(database,
        f"SELECT {POST_COLUMNS}, "
        f"snippet(posts_fts, -1, ?, ?, '…', {SNIPPET_TOKENS}) AS snippet "
        "FROM posts_fts f CROSS JOIN posts p ON p.id = f.rowid LEFT JOIN threads t ON t.post_id = p.id "
        f"WHERE posts_fts MATCH ? AND f.rowid IN ({marks})",
        (SNIPPET_START, SNIPPET_END, expression, *scores),
    )
    # bm25() is lower-is-better; hits carry higher-is-better scores like comment hits.
    hits = [SearchHit("post", post_summary(row), str(row["snippet"]), None, None, -scores[int(row["id"])])
            for row in rows]
    hits.sort(key=lambda hit: -hit.score)
    return hits, more


_COMMENT_JOINS = ("FROM comments_fts f CROSS JOIN comments c ON c.message_id = f.rowid "
                  "CROSS JOIN posts p ON p.id = c.post_id ")


async def comment_candidates(database: Database, guild_id: int, expression: str) -> list[tuple[int, str]]:
    """``(message_id, clean text)`` of the newest RANKED_WINDOW visible comments in the guild that
    match the FTS5 ``expression``: FTS5 walks the doclist newest first and stops there, however
    common the words."""
    rows = await _rows(database,
        f"SELECT f.rowid AS rowid, c.clean_content AS text {_COMMENT_JOINS} "
        f"WHERE comments_fts MATCH ? AND p.guild_id = ? AND {NOT_DELETED_OR_HIDDEN} "
        "ORDER BY f.rowid DESC LIMIT ?",
        (expression, guild_id, RANKED_WINDOW),
    )
    return [(int(row["rowid"]), str(row["text"])) for row in rows]


async def term_sample_counts(database: Database, fts_terms: Sequence[str]) -> tuple[int, list[int]]:
    """How many of the newest IDF_SAMPLE comments there are, and how many of them match each FTS5
    term (bounded work per term, for estimating term weights), in one round trip."""
    if not fts_terms:
        return 0, []
    counts = ", ".join(
        f"(SELECT count(*) FROM comments_fts WHERE comments_fts MATCH ? AND rowid >= sample.low) AS t{index}"
        for index in range(len(fts_terms)))
    row = await _row(database,
        "WITH sample AS (SELECT min(message_id) AS low, count(*) AS n FROM "
        "(SELECT message_id FROM comments ORDER BY message_id DESC LIMIT ?)) "
        f"SELECT sample.n AS n, {counts} FROM sample",
        (IDF_SAMPLE, *fts_terms),
    )
    if row is None:
        return 0, [0] * len(fts_terms)
    return int(row["n"]), [int(row[f"t{index}"] or 0) for index in range(len(fts_terms))]


async def comment_hits(database: Database, expression: str, scores: Mapping[int, float]) -> list[SearchHit]:
    """The comments ``scores`` names (message id -> score) as hits with snippets of the FTS5
    ``expression``, best first (ties: newest first)."""
    marks = ",".join("?" * len(scores))
    rows = await _rows(database,
        f"SELECT {POST_COLUMNS}, c.message_id AS message_id, c.author_name AS author_name, "
        f"c.thread_id AS comment_thread_id, "
        f"snippet(comments_fts, 0, ?, ?, '…', {SNIPPET_TOKENS}) AS snippet "
        f"{_COMMENT_JOINS} LEFT JOIN threads t ON t.post_id = p.id "
        f"WHERE comments_fts MATCH ? AND f.rowid IN ({marks})",
        (SNIPPET_START, SNIPPET_END, expression, *scores),
    )
    return comment_hits_of(rows, scores)


def comment_hits_of(rows: Sequence[Row], scores: Mapping[int, float]) -> list[SearchHit]:
    """Comment search hits, best first, from rows of POST_COLUMNS plus message_id, author_name,
    comment_thread_id and snippet (either engine's)."""
    hits: list[SearchHit] = []
    for row in rows:
        post = post_summary(row)
        if post.thread_id is None and row["comment_thread_id"] is not None:
            # The comment knows its thread even when the threads row is gone.
            post = PostSummary(post.post_id, post.guild_id, post.title, post.url, post.published_at,
                               int(row["comment_thread_id"]), post.comment_count)
        message_id = int(row["message_id"])
        hits.append(SearchHit("comment", post, str(row["snippet"]), message_id,
                              str(row["author_name"]), scores[message_id]))
    hits.sort(key=lambda hit: (-hit.score, -(hit.message_id or 0)))
    return hits


async def post_details(database: Database, guild_id: int, post_id: int) -> PostDetails | None:
    row = await _row(database,
        f"SELECT {POST_COLUMNS}, p.author AS author, p.summary AS summary "
        "FROM posts p LEFT JOIN threads t ON t.post_id = p.id WHERE p.guild_id = ? AND p.id = ?",
        (guild_id, post_id),
    )
    if row is None:
        return None
    activity = await _row(database,
        "SELECT count(DISTINCT coalesce(CAST(c.author_id AS TEXT), c.author_name)) AS participants, "
        f"max(c.created_at) AS last_activity FROM comments c WHERE c.post_id = ? AND {NOT_DELETED_OR_HIDDEN}",
        (post_id,),
    )
    names = await _rows(database,
        "SELECT max(c.author_name) AS name, count(*) AS n FROM comments c "
        "LEFT JOIN user_privacy u ON u.user_id = c.author_id "
        f"WHERE c.post_id = ? AND {NOT_DELETED_OR_HIDDEN} AND c.is_bot = 0 AND coalesce(u.opted_out, 0) = 0 "
        "GROUP BY coalesce(CAST(c.author_id AS TEXT), c.author_name) ORDER BY n DESC, min(c.created_at) LIMIT ?",
        (post_id, PARTICIPANTS_SHOWN),
    )
    reactions = await _rows(database,
        "SELECT r.emoji AS emoji, sum(r.count) AS total FROM reactions r "
        "JOIN comments c ON c.message_id = r.message_id "
        f"WHERE c.post_id = ? AND {NOT_DELETED_OR_HIDDEN} GROUP BY r.emoji ORDER BY total DESC, r.emoji LIMIT ?",
        (post_id, TOP_REACTIONS_SHOWN),
    )
    return PostDetails(
        post=post_summary(row),
        author=row["author"],
        summary=str(row["summary"] or ""),
        participant_count=int(activity["participants"]) if activity else 0,
        participant_names=tuple(str(name["name"]) for name in names),
        last_activity=from_db_time(activity["last_activity"]) if activity else None,
        top_reactions=tuple(ReactionCount(str(r["emoji"]), int(r["total"])) for r in reactions),
    )


async def comment_page(database: Database, guild_id: int, post_id: int, page: int,
                       page_size: int) -> CommentPage | None:
    """One page (1-based; clamped) of a post's visible comments, oldest first."""
    post = await get_post(database, guild_id, post_id)
    if post is None:
        return None
    total = post.comment_count
    page_count = max(1, -(-total // page_size))
    page = min(max(1, page), page_count)
    rows = await _rows(database,
        "SELECT c.message_id, c.author_name, c.is_bot, c.clean_content, c.content, c.created_at, "
        "c.edited_at, (SELECT count(*) FROM attachments a WHERE a.message_id = c.message_id) AS files "
        f"FROM comments c WHERE c.post_id = ? AND {NOT_DELETED_OR_HIDDEN} "
        "ORDER BY c.created_at, c.message_id LIMIT ? OFFSET ?",
        (post_id, page_size, (page - 1) * page_size),
    )
    comments = tuple(
        CommentView(
            message_id=int(row["message_id"]), author_name=str(row["author_name"]),
            is_bot=bool(row["is_bot"]), text=str(row["clean_content"] or row["content"] or ""),
            created_at=from_db_time(row["created_at"]), edited=row["edited_at"] is not None,
            attachment_count=int(row["files"]),
        )
        for row in rows
    )
    return CommentPage(post, comments, page, page_count, total)


async def guild_stats(database: Database, guild_id: int, since: datetime, *,
                      top: int = 5) -> GuildStats:
    """Totals for the guild, and the posts most discussed and the most active commenters since
    ``since`` (bots and opted-out users left out).

    The totals scan every comment (seconds at a million). On SQLite this runs on its own read-only
    connection in a worker thread: it neither blocks the event loop nor holds the shared reader
    that searches and autocomplete use; on PostgreSQL the read pool has connections enough. The
    period parts only read comments whose ids (snowflakes, i.e. times) fall in the period, plus
    imported comments (negative ids).
    """
    statements = _guild_stats_statements(guild_id, since, top)
    if database.engine == "sqlite":
        return await asyncio.to_thread(_guild_stats_sync, database.path, statements, since)
    (totals_sql, totals_parameters), *period_statements = statements
    totals = await database.fetch_one(totals_sql, totals_parameters)
    discussed, commenters = [await database.fetch_all(sql, parameters) for sql, parameters in period_statements]
    return _guild_stats_of(totals, discussed, commenters, since)


def _guild_stats_sync(path: Path, statements: list[tuple[str, tuple[object, ...]]], since: datetime) -> GuildStats:
    connection = connect_read_only(path, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (totals_sql, totals_parameters), *period_statements = statements
        totals = connection.execute(totals_sql, totals_parameters).fetchone()
        discussed, commenters = [connection.execute(sql, parameters).fetchall()
                                 for sql, parameters in period_statements]
        return _guild_stats_of(totals, discussed, commenters, since)
    finally:
        connection.close()


def _guild_stats_statements(guild_id: int, since: datetime, top: int) -> list[tuple[str, tuple[object, ...]]]:
    """The totals, the most discussed posts and the top commenters: three queries."""
    in_period = "(c.message_id >= ? OR c.message_id < 0) AND c.created_at >= ?"
    period = (snowflake_floor(since), to_db_time(since))
    return [
        ("SELECT (SELECT count(*) FROM posts WHERE guild_id = ?) AS posts, "
         "count(*) AS comments, count(DISTINCT CASE WHEN c.is_bot = 0 THEN c.author_id END) AS people "
         f"FROM posts p JOIN comments c ON c.post_id = p.id WHERE p.guild_id = ? AND {NOT_DELETED_OR_HIDDEN}",
         (guild_id, guild_id)),
        (f"SELECT {POST_COLUMNS}, recent.n AS recent FROM ("
         "  SELECT c.post_id AS post_id, count(*) AS n FROM comments c JOIN posts pp ON pp.id = c.post_id"
         f"  WHERE pp.guild_id = ? AND {in_period} AND {NOT_DELETED_OR_HIDDEN}"
         "  GROUP BY c.post_id ORDER BY n DESC, c.post_id DESC LIMIT ?"
         ") recent JOIN posts p ON p.id = recent.post_id LEFT JOIN threads t ON t.post_id = p.id "
         "ORDER BY recent.n DESC, p.id DESC",
         (guild_id, *period, top)),
        ("SELECT (SELECT c2.author_name FROM comments c2 WHERE c2.author_id = grouped.author_id "
         "        ORDER BY c2.message_id DESC LIMIT 1) AS name, grouped.n AS n FROM ("
         "  SELECT c.author_id AS author_id, count(*) AS n FROM comments c JOIN posts p ON p.id = c.post_id"
         "  LEFT JOIN user_privacy u ON u.user_id = c.author_id"
         f"  WHERE p.guild_id = ? AND {in_period} AND {NOT_DELETED_OR_HIDDEN} AND c.is_bot = 0"
         "  AND c.author_id IS NOT NULL AND coalesce(u.opted_out, 0) = 0"
         "  GROUP BY c.author_id ORDER BY n DESC, c.author_id LIMIT ?"
         ") grouped ORDER BY grouped.n DESC",
         (guild_id, *period, top)),
    ]


def _guild_stats_of(totals: Row | None, discussed: Sequence[Row], commenters: Sequence[Row],
                    since: datetime) -> GuildStats:
    return GuildStats(
        posts=int(totals["posts"]) if totals else 0,
        comments=int(totals["comments"]) if totals else 0,
        participants=int(totals["people"]) if totals else 0,
        since=since,
        most_discussed=tuple(DiscussedPost(post_summary(row), int(row["recent"])) for row in discussed),
        top_commenters=tuple(CommenterCount(str(row["name"]), int(row["n"])) for row in commenters),
    )


async def title_matches(database: Database, guild_id: int, expression: str | None,
                        limit: int = AUTOCOMPLETE_LIMIT) -> list[TitleChoice]:
    """Posts matching the FTS5 ``expression`` (newest first); the newest posts when it is None."""
    limit = min(limit, AUTOCOMPLETE_LIMIT)
    if expression is None:
        rows = await _rows(database,
            "SELECT id, title FROM posts WHERE guild_id = ? ORDER BY published_at DESC, id DESC LIMIT ?",
            (guild_id, limit),
        )
    else:
        rows = await _rows(database,
            "SELECT p.id AS id, p.title AS title FROM posts_fts f CROSS JOIN posts p ON p.id = f.rowid "
            "WHERE posts_fts MATCH ? AND p.guild_id = ? ORDER BY f.rowid DESC LIMIT ?",
            (expression, guild_id, limit),
        )
    return [TitleChoice(int(row["id"]), str(row["title"])) for row in rows]


async def post_titled(database: Database, guild_id: int, title: str) -> PostSummary | None:
    """The newest post whose title is exactly ``title`` (case aside)."""
    row = await _row(database,
        "SELECT id FROM posts WHERE guild_id = ? AND lower(title) = lower(?) ORDER BY id DESC LIMIT 1",
        (guild_id, title),
    )
    return None if row is None else await get_post(database, guild_id, int(row["id"]))
