"""BM25 over candidates: term counting the way FTS5 matches, and ordering."""

from __future__ import annotations

from bot.lookup.query import build_fts_query
from bot.lookup.rank import RankTerm, bm25_rank, idf, tokens


def terms(text: str) -> list[RankTerm]:
    return [RankTerm.of(term) for term in build_fts_query(text).terms if not term.excluded]


def test_tokens_fold_case_and_diacritics() -> None:
    assert tokens("Crème BRÛLÉE, don't_stop") == ["creme", "brulee", "don", "t", "stop"]


def test_counting_words_prefixes_and_phrases() -> None:
    doc = tokens("pizza night is pizza time, pizzas at night")
    word, prefix, phrase = terms('pizza pizz* "pizza night"')
    assert word.count_in(doc) == 2
    assert prefix.count_in(doc) == 3
    assert phrase.count_in(doc) == 1


def test_more_occurrences_in_shorter_text_rank_first() -> None:
    candidates = [(1, "pizza once in a rather long comment about many other things entirely"),
                  (2, "pizza pizza pizza"),
                  (3, "pizza and pasta")]
    ranked = bm25_rank(candidates, terms("pizza"), [1.0])
    assert [rowid for rowid, _ in ranked] == [2, 3, 1]


def test_rare_terms_weigh_more() -> None:
    candidates = [(1, "the the the the pizza"), (2, "pizza pizza the")]
    weights = [idf(1900, 2000), idf(3, 2000)]
    ranked = bm25_rank(candidates, terms("the pizza"), weights)
    assert ranked[0][0] == 2
    assert idf(2000, 2000) > 0


def test_ties_prefer_newest() -> None:
    ranked = bm25_rank([(5, "same words"), (9, "same words")], terms("same"), [1.0])
    assert [rowid for rowid, _ in ranked] == [9, 5]
