"""The search store contract, on both engines: one small SQLite database (posts, threads, comments in
two guilds), searched as it is and, copied with copy-db, on the real PostgreSQL test server. Every
test runs once per engine with the same expectations: words, phrases, prefixes, excluded words,
accents and case, hidden and deleted comments, other guilds, the ranked window's order, title-only
autocomplete, the newest-first fallback."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.lookup.query import build_fts_query, search_query, title_prefix_words
from bot.lookup.search import search_in
from bot.storage import Database
from bot.storage.copydb import copy_sqlite_to_postgresql
from bot.storage.db import to_db_time
from bot.storage.search import RANKED_WINDOW, SNIPPET_END, SNIPPET_START, SearchHit
from bot.storage.search_store import (
    COMMENT_CANDIDATES,
    GIN_MATCH_COST,
    PostgresSearchStore,
    SearchQuery,
    SearchStore,
    SearchTerm,
    SqliteSearchStore,
    tsquery_expression,
)
from tests.web_support import BASE_TIME, GUILD, add_comment, next_id

OTHER_GUILD = GUILD + 1
# (guild, title, summary, has a thread), oldest first: post ids 1..6.
POSTS = (
    (GUILD, "Growing tomatoes on a balcony", "Notes on pots, soil and watering tomatoes in summer.", False),
    (GUILD, "Sourdough starter diary", "Feeding the starter; a tomato sauce for pizza on the side.", True),
    (GUILD, "Tomato sauce, slowly", "A sauce of tomatoes, garlic and olive oil. Tomato season.", True),
    (GUILD, "Café déjà vu", "Coffee notes from Zürich.", False),
    (OTHER_GUILD, "Tomato sauce elsewhere", "Tomato tomato tomato.", True),
    (GUILD, "Winter salad", "Nothing red at all.", False),
)
THREAD_BASE = 800_000_000_000_000_000


def query(text: str) -> SearchQuery:
    return search_query(build_fts_query(text))


async def build_fixture(path: Path) -> dict[str, int]:
    """The database; returns the comments' message ids by name."""
    database = await Database.open(path)
    try:
        def posts(connection: sqlite3.Connection) -> None:
            for number, (guild, title, summary, threaded) in enumerate(POSTS, start=1):
                stamp = to_db_time(BASE_TIME + timedelta(days=number))
                connection.execute(
                    "INSERT INTO posts (id, guild_id, canonical_url, title, author, summary, published_at, "
                    "first_seen_at) VALUES (?, ?, ?, ?, 'Ada', ?, ?, ?)",
                    (number, guild, f"https://blog.example/{number}", title, summary, stamp, stamp))
                if threaded:
                    connection.execute(
                        "INSERT INTO threads (thread_id, post_id, guild_id, parent_channel_id, name, created_at, "
                        "updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
                        (THREAD_BASE + number, number, guild, title, stamp, stamp))

        await database.write(posts)
        ids: dict[str, int] = {}
        for name, post, text in (
            ("made", 3, "I made the tomato sauce yesterday"),
            ("triple", 3, "Tomato, tomato, TOMATO!"),
            ("hidden", 3, "tomato spam"),
            ("deleted", 3, "tomato gone"),
            ("pizza", 2, "Pizza with tomato sauce and basil"),
            ("elsewhere", 5, "tomato in the other guild"),
            ("unrelated", 2, "The starter smells of apples"),
        ):
            ids[name] = await add_comment(database, post, text, thread_id=THREAD_BASE + post, message_id=next_id(),
                                          hidden=name == "hidden", deleted=name == "deleted")
        return ids
    finally:
        await database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite, else the URL of a fresh PostgreSQL database (the server only for that engine)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgresql_url"))


@pytest.fixture
async def fixture(engine: str | None, tmp_path: Path) -> AsyncIterator[tuple[SearchStore, dict[str, int]]]:
    path = tmp_path / "search.db"
    ids = await build_fixture(path)
    if engine is None:
        database = await Database.open(path)
        try:
            yield SqliteSearchStore(database), ids
        finally:
            await database.close()
        return
    connection = await asyncpg.connect(engine)
    try:
        await copy_sqlite_to_postgresql(path, connection)
        yield PostgresSearchStore(connection), ids
    finally:
        await connection.close()


def post_ids(hits: list[SearchHit]) -> list[int]:
    return [hit.post.post_id for hit in hits]


def marked(hit: SearchHit, word: str) -> bool:
    return f"{SNIPPET_START}{word}{SNIPPET_END}" in hit.snippet


async def test_words_rank_title_matches_first_within_the_guild(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, _ = fixture
    hits, more = await store.search_posts(GUILD, query("tomato"), 5)
    assert post_ids(hits) == [3, 2] and not more  # post 5 is another guild's; post 1 has "tomatoes"
    assert marked(hits[0], "Tomato") and marked(hits[1], "tomato")
    assert [hit.post.thread_id for hit in hits] == [THREAD_BASE + 3, THREAD_BASE + 2]
    assert [hit.post.comment_count for hit in hits] == [2, 2]  # hidden and deleted comments not counted
    assert hits[0].score > hits[1].score
    first, more = await store.search_posts(GUILD, query("tomato"), 1)
    assert post_ids(first) == [3] and more


async def test_phrases_prefixes_exclusions_accents(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, _ = fixture

    async def found(text: str) -> list[int]:
        return sorted(post_ids((await store.search_posts(GUILD, query(text), 10))[0]))

    assert await found('"tomato sauce"') == [2, 3]
    assert await found('"sauce tomato"') == []
    assert await found('"sauce of tomatoes"') == [3]
    assert await found("tomato*") == [1, 2, 3]
    assert await found("tomato -pizza") == [3]
    assert await found('tomato* -"olive oil"') == [1, 2]
    assert await found("cafe DEJA") == [4]
    assert await found("zurich") == [4]
    assert await found("ZÜRICH") == [4]
    assert await found("zucchini") == []
    # A phrase does not run from the title into the summary (FTS5: two columns).
    assert await found('"diary feeding"') == []


async def test_comment_candidates_newest_first_visible_only(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, ids = fixture
    candidates = await store.comment_candidates(GUILD, query("tomato"))
    assert candidates == [(ids["pizza"], "Pizza with tomato sauce and basil"),
                          (ids["triple"], "Tomato, tomato, TOMATO!"),
                          (ids["made"], "I made the tomato sauce yesterday")]
    assert [message for message, _ in await store.comment_candidates(GUILD, query('"tomato sauce" -basil'))] == [
        ids["made"]]
    assert await store.comment_candidates(GUILD, query("apples*")) == [
        (ids["unrelated"], "The starter smells of apples")]
    assert await store.comment_candidates(OTHER_GUILD, query("tomato")) == [
        (ids["elsewhere"], "tomato in the other guild")]


async def test_term_sample_counts(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, _ = fixture
    terms = [SearchTerm(("tomato",)), SearchTerm(("tomato", "sauce")), SearchTerm(("piz",), prefix=True),
             SearchTerm(("nothing",))]
    # Every comment of every guild (hidden ones too; a deleted one has no text left).
    assert await store.term_sample_counts(terms) == (7, [5, 2, 1, 0])
    assert await store.term_sample_counts([]) == (0, [])


async def test_comment_hits_best_first_ties_newest_first(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, ids = fixture
    hits = await store.comment_hits(query("tomato"), {ids["made"]: 2.0, ids["triple"]: 1.0, ids["pizza"]: 2.0})
    assert [hit.message_id for hit in hits] == [ids["pizza"], ids["made"], ids["triple"]]
    assert [hit.score for hit in hits] == [2.0, 2.0, 1.0]
    assert [hit.post.post_id for hit in hits] == [2, 3, 3]
    assert all(hit.kind == "comment" and hit.author_name == "reader" for hit in hits)
    assert marked(hits[0], "tomato") and marked(hits[2], "Tomato")
    assert await store.comment_hits(query("tomato"), {}) == []


async def test_the_whole_search_agrees(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    """bot.lookup.search over the store: posts, and comments ranked from its candidates and counts."""
    store, ids = fixture
    results = await search_in(store, GUILD, build_fts_query("tomato sauce -basil"), comment_limit=1)
    assert post_ids(list(results.posts)) == [3, 2] and not results.more_posts
    assert [hit.message_id for hit in results.comments] == [ids["made"]] and not results.more_comments
    results = await search_in(store, GUILD, build_fts_query("tomato sauce"), comment_limit=1)
    assert [hit.message_id for hit in results.comments] == [ids["pizza"]] and results.more_comments  # shorter
    assert marked(results.comments[0], "tomato") and marked(results.comments[0], "sauce")


async def test_title_autocomplete_and_newest_first_fallback(fixture: tuple[SearchStore, dict[str, int]]) -> None:
    store, _ = fixture

    async def titles(typed: str) -> list[int]:
        return [choice.post_id for choice in await store.title_matches(GUILD, title_prefix_words(typed))]

    assert await titles("tom") == [3, 1]       # title words only: post 2 has "tomato" in its summary
    assert await titles("sauce slo") == [3]
    assert await titles("deja") == [4]
    assert await titles("coffee") == []         # a summary word
    assert await titles("") == [6, 4, 3, 2, 1]  # nothing typed: the newest posts of the guild
    assert [choice.post_id for choice in await store.title_matches(GUILD, [], limit=2)] == [6, 4]


async def test_both_engines_give_the_same_results(postgresql_url: str, tmp_path: Path) -> None:
    """Side by side on one database and its copy: the same posts in the same order, the same comment
    candidates and autocomplete choices, for every query here."""
    path = tmp_path / "search.db"
    await build_fixture(path)
    connection = await asyncpg.connect(postgresql_url)
    database = await Database.open(path)
    try:
        await copy_sqlite_to_postgresql(path, connection)
        sqlite_store, postgresql_store = SqliteSearchStore(database), PostgresSearchStore(connection)
        for text in ("tomato", "tomato*", "Tomato sauce", '"tomato sauce"', "sauce -pizza", "tomat* -olive",
                     "cafe", "notes", "starter", "apples", "zucchini", "of"):
            for guild in (GUILD, OTHER_GUILD):
                on_sqlite = await sqlite_store.search_posts(guild, query(text), 10)
                on_postgresql = await postgresql_store.search_posts(guild, query(text), 10)
                assert post_ids(on_postgresql[0]) == post_ids(on_sqlite[0]), (text, guild)
                assert on_postgresql[1] == on_sqlite[1]
                assert (await postgresql_store.comment_candidates(guild, query(text))
                        == await sqlite_store.comment_candidates(guild, query(text))), (text, guild)
                words = title_prefix_words(text)
                assert (await postgresql_store.title_matches(guild, words)
                        == await sqlite_store.title_matches(guild, words)), (text, guild)
    finally:
        await database.close()
        await connection.close()


async def test_every_way_to_the_newest_matches_gives_sqlites_on_postgresql(postgresql_url: str,
                                                                            tmp_path: Path) -> None:
    """PostgreSQL reaches the newest RANKED_WINDOW matches one of three ways: the newest comments it
    tests first hold them all, or it walks on newest first, or it reads every match through the GIN
    index. Each way, for words in almost every comment, in every tenth, in a few: SQLite's answer."""
    path = tmp_path / "search.db"
    await build_fixture(path)
    bulk_comments = 2100
    database = await Database.open(path)
    try:
        def bulk(connection: sqlite3.Connection) -> None:
            stamp = to_db_time(BASE_TIME)
            connection.executemany(
                "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, "
                "clean_content, created_at) VALUES (?, 3, ?, 7, 'bulk', ?, ?, ?)",
                [(next_id(), THREAD_BASE + 3, text, text, stamp) for text in (
                    f"bulk {'rare' if number % 500 == 7 else 'common'} word {number}"
                    f"{' tenth' if number % 10 == 3 else ''}" for number in range(bulk_comments))])

        await database.write(bulk)
        connection = await asyncpg.connect(postgresql_url)
        try:
            await copy_sqlite_to_postgresql(path, connection)  # ANALYZEs: the planner knows the row count
            sqlite_store = SqliteSearchStore(database)
            cases = (
                # (text, comments matching in the guild, newest comments tested first, expected way)
                ("common", RANKED_WINDOW, 400, "newest"),
                ("common", RANKED_WINDOW, 100, "walk"),
                ("bulk -rare", RANKED_WINDOW, 100, "walk"),
                ("tenth", 210, 100, "gin"),
                ("tenth", 210, 5000, "gin"),
                ("rare", 5, 100, "gin"),
                ("bulk -common", 5, 400, "gin"),
                ("word 1234", 1, 5000, "gin"),
                ("common", RANKED_WINDOW, 5000, "newest"),
            )
            for text, expected, newest_tested, way in cases:
                on_sqlite = await sqlite_store.comment_candidates(GUILD, query(text))
                assert len(on_sqlite) == expected, text
                postgresql_store = PostgresSearchStore(connection, newest_tested=newest_tested)
                assert await postgresql_store.comment_candidates(GUILD, query(text)) == on_sqlite, (text, way)
                rows = await connection.fetch(COMMENT_CANDIDATES, tsquery_expression(query(text)), GUILD, RANKED_WINDOW, newest_tested, GIN_MATCH_COST)
                assert {row["way"] for row in rows} == {way}, (text, newest_tested)
        finally:
            await connection.close()
    finally:
        await database.close()
