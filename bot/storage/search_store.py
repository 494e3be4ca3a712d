"""The search read path behind one interface, :class:`SearchStore`, on either engine.

A query arrives as engine-neutral terms (:class:`SearchQuery`: words, phrases, prefixes, excluded
terms; bot.lookup.query parses what a person typed into them) and each engine writes its own
expression: an FTS5 MATCH expression on SQLite (:class:`SqliteSearchStore`, the functions of
bot.storage.search), a ``tsquery`` on PostgreSQL (:class:`PostgresSearchStore`: the ``posts_fts`` /
``comments_fts`` tsvector documents the triggers keep, their GIN indexes, ``ts_rank``,
``ts_headline``). Both rank only the newest RANKED_WINDOW matches, list comment candidates and
autocomplete titles newest first, and return the newest posts when nothing was typed.

PostgreSQL's ``websearch_to_tsquery`` is not used: it has no prefix search (``word*``) and would
read the user's text with its own grammar. The tsquery is built from the parsed terms instead,
each word a quoted lexeme normalised by the ``conversation_search`` configuration (unaccent, lower
case), so what a word matches is the same on both engines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.storage import search as sqlite_search
from bot.storage.db import Database
from bot.storage.postgres_engine import PostgresReader
from bot.storage.search import (
    AUTOCOMPLETE_LIMIT,
    IDF_SAMPLE,
    NOT_DELETED_OR_HIDDEN,
    POST_COLUMNS,
    RANKED_WINDOW,
    SNIPPET_END,
    SNIPPET_START,
    SNIPPET_TOKENS,
    SearchHit,
    TitleChoice,
    post_summary,
)

SEARCH_CONFIGURATION = "conversation_search"
# ts_rank's weights for {D, C, B, A}: a title word (A) counts 4 times a summary word (D), as the
# 4.0 / 1.0 column weights of SQLite's bm25(posts_fts, 4.0, 1.0).
POST_RANK_WEIGHTS = [0.25, 0.25, 0.25, 1.0]
# As many words around the match as FTS5's snippet() shows (SNIPPET_TOKENS), not ts_headline's few.
_HEADLINE_OPTIONS = (f'StartSel="{SNIPPET_START}", StopSel="{SNIPPET_END}", MaxWords={SNIPPET_TOKENS}, '
                     f"MinWords={SNIPPET_TOKENS - 1}, ShortWord=0, HighlightAll=false")


@dataclass(frozen=True, slots=True)
class SearchTerm:
    """One word, or a phrase of consecutive words; ``prefix``: its last word may go on."""

    words: tuple[str, ...]
    prefix: bool = False
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Every wanted term must match, no excluded term may (at least one term is wanted)."""

    terms: tuple[SearchTerm, ...]

    @property
    def wanted(self) -> tuple[SearchTerm, ...]:
        return tuple(term for term in self.terms if not term.excluded)

    @property
    def unwanted(self) -> tuple[SearchTerm, ...]:
        return tuple(term for term in self.terms if term.excluded)


class SearchStore(Protocol):
    """The reads ``/post search`` and the post options' autocomplete make."""

    async def search_posts(self, guild_id: int, query: SearchQuery, limit: int) -> tuple[list[SearchHit], bool]:
        """The best ``limit`` posts (title and summary) among the newest RANKED_WINDOW matches, best
        first (higher score better), and whether more matched."""
        ...

    async def comment_candidates(self, guild_id: int, query: SearchQuery) -> list[tuple[int, str]]:
        """``(message_id, clean text)`` of the newest RANKED_WINDOW visible matching comments, newest first."""
        ...

    async def term_sample_counts(self, terms: Sequence[SearchTerm]) -> tuple[int, list[int]]:
        """How many of the newest IDF_SAMPLE comments there are, and how many of them match each term."""
        ...

    async def comment_hits(self, query: SearchQuery, scores: Mapping[int, float]) -> list[SearchHit]:
        """The comments ``scores`` names as hits with snippets, best first (ties: newest first)."""
        ...

    async def title_matches(self, guild_id: int, words: Sequence[str],
                            limit: int = AUTOCOMPLETE_LIMIT) -> list[TitleChoice]:
        """Posts whose title has a word starting with each of ``words``, newest first; the newest
        posts when ``words`` is empty."""
        ...


# --- SQLite: FTS5 expressions over bot.storage.search ---------------------------------------------

def fts5_term(term: SearchTerm) -> str:
    text = '"' + " ".join(term.words).replace('"', '""') + '"'
    return text + ("*" if term.prefix else "")


def fts5_expression(query: SearchQuery) -> str:
    """The FTS5 MATCH expression of ``query`` (every word a quoted FTS5 string: no syntax gets through)."""
    expression = " AND ".join(fts5_term(term) for term in query.wanted)
    if query.unwanted:
        expression = "(" + expression + ") NOT (" + " OR ".join(fts5_term(term) for term in query.unwanted) + ")"
    return expression


def fts5_title_prefix(words: Sequence[str]) -> str | None:
    if not words:
        return None
    return "{title} : (" + " AND ".join(fts5_term(SearchTerm((word,), prefix=True)) for word in words) + ")"


class SqliteSearchStore:
    """:class:`SearchStore` on SQLite's FTS5 tables (the read connection of ``database``)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def search_posts(self, guild_id: int, query: SearchQuery, limit: int) -> tuple[list[SearchHit], bool]:
        return await sqlite_search.search_posts(self._database, guild_id, fts5_expression(query), limit)

    async def comment_candidates(self, guild_id: int, query: SearchQuery) -> list[tuple[int, str]]:
        return await sqlite_search.comment_candidates(self._database, guild_id, fts5_expression(query))

    async def term_sample_counts(self, terms: Sequence[SearchTerm]) -> tuple[int, list[int]]:
        return await sqlite_search.term_sample_counts(self._database, [fts5_term(term) for term in terms])

    async def comment_hits(self, query: SearchQuery, scores: Mapping[int, float]) -> list[SearchHit]:
        if not scores:
            return []
        return await sqlite_search.comment_hits(self._database, fts5_expression(query), scores)

    async def title_matches(self, guild_id: int, words: Sequence[str],
                            limit: int = AUTOCOMPLETE_LIMIT) -> list[TitleChoice]:
        return await sqlite_search.title_matches(self._database, guild_id, fts5_title_prefix(words), limit)


# --- PostgreSQL: tsquery over the tsvector documents ----------------------------------------------

def _lexeme(word: str, suffix: str) -> str:
    # A quoted tsquery operand: to_tsquery still normalises it (unaccent, lower case) but never
    # reads it as an operator. Parsed words hold only letters and digits; quotes and backslashes
    # are escaped all the same.
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'" + (":" + suffix if suffix else "")


def tsquery_term(term: SearchTerm, *, weight: str = "") -> str:
    """A term as tsquery text: a phrase's words follow each other (``<->``), a prefix term's last
    word is a prefix (``:*``); ``weight`` restricts every word to that weight (``A``: the title)."""
    last = len(term.words) - 1
    parts = [_lexeme(word, ("*" if term.prefix and index == last else "") + weight)
             for index, word in enumerate(term.words)]
    return "(" + " <-> ".join(parts) + ")"


def tsquery_expression(query: SearchQuery) -> str:
    """The tsquery text of ``query``, for ``to_tsquery('conversation_search', ...)``."""
    expression = " & ".join(tsquery_term(term) for term in query.wanted)
    if query.unwanted:
        expression = "(" + expression + ") & !(" + " | ".join(tsquery_term(term) for term in query.unwanted) + ")"
    return expression


def tsquery_rank_expression(query: SearchQuery) -> str:
    """The tsquery ``ts_rank`` weighs a match with: the wanted terms, any of them. Excluded terms
    never occur in a match; left in, and with ``&``, they make ts_rank score by the distance
    between terms and give every match almost nothing. Summing over the terms is what bm25 does."""
    return " | ".join(tsquery_term(term) for term in query.wanted)


def tsquery_title_prefix(words: Sequence[str]) -> str:
    return " & ".join(tsquery_term(SearchTerm((word,), prefix=True), weight="A") for word in words)


_TSQUERY = f"to_tsquery('{SEARCH_CONFIGURATION}', $1)"


# comment_candidates tests the newest NEWEST_TESTED comments one by one first. If they hold
# RANKED_WINDOW matches in the guild, those are the answer. Otherwise their count estimates how many
# of all N comments match (M ~ found * N / NEWEST_TESTED), and the cheaper way to the newest
# RANKED_WINDOW is taken: walk on, newest first, testing about RANKED_WINDOW * N / M documents, or
# read all M matches through the GIN index, where one match costs as much as testing
# GIN_MATCH_COST documents (1.1 us against 0.24 us, bench/README.md, session 10). Walk iff
# M^2 * GIN_MATCH_COST > RANKED_WINDOW * N. N is the planner's row estimate (0 before the first
# ANALYZE: then the GIN index, right for a small table). Each row says the way it came (``way``).
NEWEST_TESTED = 5000
GIN_MATCH_COST = 4.6
_VISIBLE_IN_GUILD = "p.guild_id = $2 AND " + NOT_DELETED_OR_HIDDEN
COMMENT_CANDIDATES = (
    "WITH newest AS MATERIALIZED ("
    "  SELECT c.message_id, c.clean_content"
    "  FROM (SELECT message_id, document FROM comments_fts ORDER BY message_id DESC LIMIT $4) f"
    "  JOIN comments c ON c.message_id = f.message_id JOIN posts p ON p.id = c.post_id"
    f"  WHERE f.document @@ {_TSQUERY} AND {_VISIBLE_IN_GUILD} ORDER BY f.message_id DESC LIMIT $3), "
    "way AS ("
    "  SELECT CASE WHEN found.n >= $3 THEN 'newest'"
    "    WHEN found.n::float8 * found.n * greatest(t.reltuples, 0) * $5 > $3 * $4::float8 * $4 THEN 'walk'"
    "    ELSE 'gin' END AS name"
    "  FROM (SELECT count(*) AS n FROM newest) found, pg_class t WHERE t.oid = 'comments_fts'::regclass), "
    "matches AS MATERIALIZED ("
    f"  SELECT message_id FROM comments_fts WHERE (SELECT name FROM way) = 'gin' AND document @@ {_TSQUERY}) "
    "SELECT 'newest' AS way, message_id, clean_content FROM newest WHERE (SELECT name FROM way) = 'newest' "
    "UNION ALL "
    "(SELECT 'walk', c.message_id, c.clean_content FROM comments_fts f JOIN comments c ON c.message_id = f.message_id"
    "  JOIN posts p ON p.id = c.post_id"
    f"  WHERE (SELECT name FROM way) = 'walk' AND f.document @@ {_TSQUERY} AND {_VISIBLE_IN_GUILD}"
    "  ORDER BY f.message_id DESC LIMIT $3) "
    "UNION ALL "
    # LIMIT 1 keeps the lateral subquery a nested loop over the sorted matches (pulled up into a join,
    # the planner merge-joined it with a walk over every comment).
    "(SELECT 'gin', c.message_id, c.clean_content FROM (SELECT message_id FROM matches ORDER BY message_id DESC) f"
    "  CROSS JOIN LATERAL (SELECT c.message_id, c.clean_content FROM comments c JOIN posts p ON p.id = c.post_id"
    f"    WHERE c.message_id = f.message_id AND {_VISIBLE_IN_GUILD} LIMIT 1) c"
    "  ORDER BY f.message_id DESC LIMIT $3)")


class PostgresSearchStore:
    """:class:`SearchStore` on PostgreSQL (an asyncpg connection or pool)."""

    def __init__(self, connection: Any, *, newest_tested: int = NEWEST_TESTED) -> None:
        self._connection = connection
        self._newest_tested = newest_tested

    async def _fetch(self, sql: str, *arguments: object) -> list[Any]:
        return list(await self._connection.fetch(sql, *arguments))

    async def search_posts(self, guild_id: int, query: SearchQuery, limit: int) -> tuple[list[SearchHit], bool]:
        expression = tsquery_expression(query)
        ranked = await self._fetch(
            f"WITH q AS (SELECT {_TSQUERY} AS query), newest AS ("
            "  SELECT f.post_id, f.document FROM posts_fts f JOIN posts p ON p.id = f.post_id, q"
            "  WHERE f.document @@ q.query AND p.guild_id = $2 ORDER BY f.post_id DESC LIMIT $3) "
            f"SELECT newest.post_id, ts_rank($4::real[], newest.document, "
            f"to_tsquery('{SEARCH_CONFIGURATION}', $6)) AS score FROM newest "
            "ORDER BY score DESC, newest.post_id DESC LIMIT $5",
            expression, guild_id, RANKED_WINDOW, POST_RANK_WEIGHTS, limit + 1, tsquery_rank_expression(query))
        more = len(ranked) > limit
        scores = {int(row["post_id"]): float(row["score"]) for row in ranked[:limit]}
        if not scores:
            return [], False
        rows = await self._fetch(
            f"SELECT {POST_COLUMNS}, ts_headline('{SEARCH_CONFIGURATION}', p.title || ' ' || p.summary, "
            f"{_TSQUERY}, $3) AS snippet "
            "FROM posts p LEFT JOIN threads t ON t.post_id = p.id WHERE p.id = ANY($2::bigint[])",
            expression, list(scores), _HEADLINE_OPTIONS)
        hits = [SearchHit("post", post_summary(row), str(row["snippet"]), None, None, scores[int(row["id"])])
                for row in rows]
        hits.sort(key=lambda hit: (-hit.score, -hit.post.post_id))
        return hits, more

    async def comment_candidates(self, guild_id: int, query: SearchQuery) -> list[tuple[int, str]]:
        # One statement whichever way it takes (see COMMENT_CANDIDATES): the planner alone cannot
        # tell a word in 1% of the comments from one in 0.01% (it guesses a rare word's frequency).
        rows = await self._fetch(COMMENT_CANDIDATES, tsquery_expression(query), guild_id, RANKED_WINDOW,
                                 self._newest_tested, GIN_MATCH_COST)
        return [(int(row["message_id"]), str(row["clean_content"])) for row in rows]

    async def term_sample_counts(self, terms: Sequence[SearchTerm]) -> tuple[int, list[int]]:
        if not terms:
            return 0, []
        counts = ", ".join(
            f"(SELECT count(*) FROM comments_fts WHERE document @@ to_tsquery('{SEARCH_CONFIGURATION}', "
            f"${index + 2}) AND message_id >= sample.low) AS t{index}"
            for index in range(len(terms)))
        rows = await self._fetch(
            "WITH sample AS (SELECT min(message_id) AS low, count(*) AS n FROM "
            "(SELECT message_id FROM comments ORDER BY message_id DESC LIMIT $1) AS newest) "
            f"SELECT sample.n AS n, {counts} FROM sample",
            IDF_SAMPLE, *(tsquery_term(term) for term in terms))
        if not rows:
            return 0, [0] * len(terms)
        row = rows[0]
        return int(row["n"]), [int(row[f"t{index}"] or 0) for index in range(len(terms))]

    async def comment_hits(self, query: SearchQuery, scores: Mapping[int, float]) -> list[SearchHit]:
        if not scores:
            return []
        rows = await self._fetch(
            f"SELECT {POST_COLUMNS}, c.message_id AS message_id, c.author_name AS author_name, "
            "c.thread_id AS comment_thread_id, "
            f"ts_headline('{SEARCH_CONFIGURATION}', c.clean_content, {_TSQUERY}, $3) AS snippet "
            "FROM comments c JOIN posts p ON p.id = c.post_id LEFT JOIN threads t ON t.post_id = p.id "
            "WHERE c.message_id = ANY($2::bigint[])",
            tsquery_expression(query), list(scores), _HEADLINE_OPTIONS)
        return sqlite_search.comment_hits_of(rows, scores)

    async def title_matches(self, guild_id: int, words: Sequence[str],
                            limit: int = AUTOCOMPLETE_LIMIT) -> list[TitleChoice]:
        limit = min(limit, AUTOCOMPLETE_LIMIT)
        if not words:
            rows = await self._fetch(
                "SELECT id, title FROM posts WHERE guild_id = $1 ORDER BY published_at DESC, id DESC LIMIT $2",
                guild_id, limit)
        else:
            rows = await self._fetch(
                "SELECT p.id, p.title FROM posts_fts f JOIN posts p ON p.id = f.post_id "
                f"WHERE f.document @@ to_tsquery('{SEARCH_CONFIGURATION}', $1) AND p.guild_id = $2 "
                "ORDER BY f.post_id DESC LIMIT $3",
                tsquery_title_prefix(words), guild_id, limit)
        return [TitleChoice(int(row["id"]), str(row["title"])) for row in rows]


def search_store_for(database: Database) -> SearchStore:
    """The search store of ``database``'s engine."""
    if isinstance(database.reader, PostgresReader):
        return PostgresSearchStore(database.reader.pool)
    return SqliteSearchStore(database)
