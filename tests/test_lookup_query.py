"""The FTS query builder: escaping, the small grammar, refusals, and a property test against a
real FTS5 table."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.lookup.query import (
    MAX_TERMS,
    QueryRefused,
    build_fts_query,
    build_title_prefix_query,
    words_of,
)


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE t USING fts5 (title, summary, "
                       "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')")
    connection.executemany("INSERT INTO t (title, summary) VALUES (?, ?)", [
        ("Hello world", "a post about greetings"),
        ("Pizza night", "cheese and pineapple arguments"),
        ("Pizza without pineapple", "the classic"),
        ("Crème brûlée", "dessert notes"),
        ("title: colon", "NEAR and AND or NOT words"),
    ])
    return connection


def matches(connection: sqlite3.Connection, expression: str) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT title FROM t WHERE t MATCH ? ORDER BY rowid", (expression,))]


def test_plain_words_are_all_required(fts: sqlite3.Connection) -> None:
    assert matches(fts, build_fts_query("pizza pineapple").expression) == [
        "Pizza night", "Pizza without pineapple"]
    assert matches(fts, build_fts_query("pizza classic").expression) == ["Pizza without pineapple"]


def test_phrase_prefix_and_exclusion(fts: sqlite3.Connection) -> None:
    assert matches(fts, build_fts_query('"pizza night"').expression) == ["Pizza night"]
    assert matches(fts, build_fts_query("pine*").expression) == ["Pizza night", "Pizza without pineapple"]
    assert matches(fts, build_fts_query("pizza -night").expression) == ["Pizza without pineapple"]
    assert matches(fts, build_fts_query('pizza -"pizza night"').expression) == ["Pizza without pineapple"]


def test_diacritics_fold(fts: sqlite3.Connection) -> None:
    assert matches(fts, build_fts_query("creme brulee").expression) == ["Crème brûlée"]


@pytest.mark.parametrize("text", ['"unbalanced', "unbalanced\"", "AND OR NOT", "NEAR(", "NEAR(pizza",
                                  "title:", "title:colon", "^pizza", "pizza AND", "OR pizza", "(pizza",
                                  "pizza)", "a*b", "pizza**", "'pizza'", "{title}: pizza", "pi-zza",
                                  "\x00pizza", "pizza\x00night"])
def test_malformed_queries_are_escaped(fts: sqlite3.Connection, text: str) -> None:
    query = build_fts_query(text)
    matches(fts, query.expression)  # SQLite accepts it


def test_operators_are_plain_words(fts: sqlite3.Connection) -> None:
    assert matches(fts, build_fts_query("AND OR NOT").expression) == ["title: colon"]
    assert matches(fts, build_fts_query("NEAR(").expression) == ["title: colon"]
    assert matches(fts, build_fts_query("title:").expression) == ["title: colon"]


def test_unbalanced_quote_is_explained(fts: sqlite3.Connection) -> None:
    query = build_fts_query('"pizza night')
    assert query.notes == ("an unmatched quote was ignored",)
    assert matches(fts, query.expression) == ["Pizza night"]


@pytest.mark.parametrize("text", ["", "   ", "-", "*", "- * ( ) :", '""', '"-"', "\x00"])
def test_nothing_to_search_is_refused(text: str) -> None:
    with pytest.raises(QueryRefused, match="nothing to search for"):
        build_fts_query(text)


def test_only_exclusions_is_refused() -> None:
    with pytest.raises(QueryRefused, match="leaves things out"):
        build_fts_query("-pizza -night")


def test_long_queries_are_bounded() -> None:
    query = build_fts_query(" ".join(f"word{index}" for index in range(40)))
    assert len(query.terms) == MAX_TERMS
    assert any("only the first" in note for note in query.notes)


def test_words_follow_unicode61() -> None:
    assert words_of("don't stop-me now_ok 3.14 日本語") == ["don", "t", "stop", "me", "now", "ok", "3",
                                                           "14", "日本語"]


def test_title_prefix_query(fts: sqlite3.Connection) -> None:
    expression = build_title_prefix_query("piz with")
    assert expression is not None
    assert matches(fts, expression) == ["Pizza without pineapple"]
    # Summary text does not count for title completion.
    classic = build_title_prefix_query("classic")
    assert classic is not None and matches(fts, classic) == []
    assert build_title_prefix_query(" -*: ") is None


@settings(max_examples=600, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(max_size=80) | st.text(alphabet='"*-:^(){}+ .NEARNOTAND\'abc ', max_size=40))
def test_built_queries_are_always_accepted(fts: sqlite3.Connection, text: str) -> None:
    try:
        query = build_fts_query(text)
    except QueryRefused:
        return
    fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query.expression,)).fetchone()
    prefix = build_title_prefix_query(text)
    if prefix is not None:
        fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (prefix,)).fetchone()
