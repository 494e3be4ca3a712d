"""BM25 over a bounded candidate set, computed here instead of by FTS5's bm25().

FTS5's bm25() computes each phrase's inverse document frequency by walking the phrase's whole
doclist, so its cost grows with how common the words are (about 20 ms for a word in most of a
million comments, 85 ms for a phrase of two such words), however few rows are ranked. Here the
candidates are at most a few hundred of the newest matches, so term frequencies are counted in
their text, and the IDF comes from a bounded sample of the newest comments (a cheap FTS5 count
restricted by rowid). All candidates contain every wanted term (the query is an AND), so IDF only
weighs the terms against each other; a sample estimates that well.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from bot.lookup.query import Term

K1 = 1.2
B = 0.75
_TOKEN = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case and diacritics folded, like unicode61 with remove_diacritics 2."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


@dataclass(frozen=True, slots=True)
class RankTerm:
    words: tuple[str, ...]       # folded
    prefix: bool

    @classmethod
    def of(cls, term: Term) -> RankTerm:
        return cls(tuple(word for original in term.words for word in tokens(original)), term.prefix)

    def count_in(self, doc: Sequence[str]) -> int:
        """How often the term occurs in the token list (a phrase as consecutive tokens; the
        prefix applies to its last word)."""
        if not self.words:
            return 0
        last = self.words[-1]
        if len(self.words) == 1:
            if self.prefix:
                return sum(1 for token in doc if token.startswith(last))
            return doc.count(last)
        head = list(self.words[:-1])
        size = len(self.words)
        found = 0
        for start in range(len(doc) - size + 1):
            if doc[start] == head[0] and doc[start:start + size - 1] == head:
                token = doc[start + size - 1]
                if token == last or (self.prefix and token.startswith(last)):
                    found += 1
        return found


def idf(documents_with_term: int, documents: int) -> float:
    """The always-positive BM25 IDF (as Lucene uses), so very common words still count a little."""
    return math.log(1.0 + (documents - documents_with_term + 0.5) / (documents_with_term + 0.5))


def bm25_rank(candidates: Sequence[tuple[int, str]], terms: Sequence[RankTerm],
              weights: Sequence[float]) -> list[tuple[int, float]]:
    """``(rowid, score)`` best first (ties: newest first), for ``(rowid, text)`` candidates."""
    if not candidates:
        return []
    docs = [(rowid, tokens(text)) for rowid, text in candidates]
    average = max(1.0, sum(len(doc) for _, doc in docs) / len(docs))
    scored: list[tuple[int, float]] = []
    for rowid, doc in docs:
        norm = K1 * (1 - B + B * len(doc) / average)
        score = 0.0
        for term, weight in zip(terms, weights, strict=True):
            frequency = term.count_in(doc)
            if frequency:
                score += weight * frequency * (K1 + 1) / (frequency + norm)
        scored.append((rowid, score))
    scored.sort(key=lambda item: (-item[1], -item[0]))
    return scored
