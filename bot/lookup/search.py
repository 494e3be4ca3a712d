"""What ``/post search`` and the post options do with what a person typed: parse the query, read
the matches from a search store (bot.storage.search_store: SQLite's FTS5 or PostgreSQL's
full-text search), and rank the comments (BM25 over the newest matches, see
:mod:`bot.lookup.rank`)."""

from __future__ import annotations

import asyncio

from bot.lookup.query import FtsQuery, search_query, title_prefix_words
from bot.lookup.rank import RankTerm, bm25_rank, idf
from bot.model.ids import parse_id
from bot.storage import search as store
from bot.storage.db import Database
from bot.storage.search import AUTOCOMPLETE_LIMIT, PostSummary, SearchHit, SearchResults, TitleChoice
from bot.storage.search_store import SearchStore, search_store_for


async def search(database: Database, guild_id: int, query: FtsQuery, *,
                 post_limit: int = 3, comment_limit: int = 6) -> SearchResults:
    """Posts (title and summary) and comments matching ``query`` in one guild, best first among
    the newest matches of each kind."""
    return await search_in(search_store_for(database), guild_id, query,
                           post_limit=post_limit, comment_limit=comment_limit)


async def search_in(search_store: SearchStore, guild_id: int, query: FtsQuery, *,
                    post_limit: int = 3, comment_limit: int = 6) -> SearchResults:
    """:func:`search` on either engine's store."""
    posts, more_posts = await search_store.search_posts(guild_id, search_query(query), post_limit)
    comments, more_comments = await _search_comments(search_store, guild_id, query, comment_limit)
    return SearchResults(tuple(posts), tuple(comments), more_posts, more_comments)


async def _search_comments(search_store: SearchStore, guild_id: int, query: FtsQuery,
                           limit: int) -> tuple[list[SearchHit], bool]:
    terms = search_query(query)
    candidates = await search_store.comment_candidates(guild_id, terms)
    if not candidates:
        return [], False
    wanted = [term for term in query.terms if not term.excluded]
    documents, counts = await search_store.term_sample_counts(terms.wanted)
    weights = [idf(count, documents) for count in counts]
    ranked = await asyncio.to_thread(bm25_rank, candidates, [RankTerm.of(term) for term in wanted], weights)
    more = len(ranked) > limit
    return await search_store.comment_hits(terms, dict(ranked[:limit])), more


async def title_choices(database: Database, guild_id: int, typed: str, *,
                        limit: int = AUTOCOMPLETE_LIMIT) -> list[TitleChoice]:
    """Posts whose title words start with the typed words (newest first); the newest posts when
    nothing searchable was typed."""
    return await search_store_for(database).title_matches(guild_id, title_prefix_words(typed), limit)


async def resolve_post(database: Database, guild_id: int, reference: str) -> PostSummary | None:
    """The post a command option names: an autocomplete value (the post id), else a title typed
    by hand (exact title first, else the newest post whose title words start that way)."""
    reference = reference.strip()
    post_id = parse_id(reference)  # None for a number too big to be an id: then it is a title
    if post_id is not None:
        found = await store.get_post(database, guild_id, post_id)
        if found is not None:
            return found
    exact = await store.post_titled(database, guild_id, reference)
    if exact is not None:
        return exact
    choices = await title_choices(database, guild_id, reference, limit=1) if reference else []
    if not choices:
        return None
    return await store.get_post(database, guild_id, choices[0].post_id)
