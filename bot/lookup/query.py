"""Turn what a person typed into an FTS5 query SQLite always accepts.

Every word goes into the query as a double-quoted FTS5 string, so nothing a user types can be
read as FTS5 syntax: ``AND``/``OR``/``NOT``/``NEAR``, ``:``, ``^``, ``(``, ``*`` and ``-`` alone
are plain text. On top of that a small, forgiving grammar is understood:

- ``"two words"`` is a phrase (an unmatched quote is ignored, and the user is told);
- ``word*`` is a prefix;
- ``-word`` / ``-"a phrase"`` excludes matches (only next to at least one wanted term).

Words are what SQLite's ``unicode61`` tokenizer sees as tokens: runs of letters, digits and
private-use characters. Anything else separates words, which is why a phrase or word made only of
punctuation is dropped instead of becoming an empty FTS5 string (``""`` matches nothing at all).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.errors import UserFacingError
from bot.storage.search_store import SearchQuery, SearchTerm, fts5_expression, fts5_term, fts5_title_prefix

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
MAX_WORD_CHARS = 64

# A quoted phrase, or a run of non-space characters; an optional leading "-" and trailing "*".
_PIECE = re.compile(r'(?P<neg>-?)(?:"(?P<phrase>[^"]*)"|(?P<bare>[^\s"]+))(?P<star>\*?)')


class QueryRefused(UserFacingError):
    """The query has nothing that can be searched for; the message says why and what to type."""


@dataclass(frozen=True, slots=True)
class Term:
    words: tuple[str, ...]
    prefix: bool = False
    excluded: bool = False

    def to_fts(self) -> str:
        return fts5_term(SearchTerm(self.words, self.prefix, self.excluded))

    def describe(self) -> str:
        shown = " ".join(self.words)
        shown = f'"{shown}"' if len(self.words) > 1 else shown
        return ("-" if self.excluded else "") + shown + ("*" if self.prefix else "")


@dataclass(frozen=True, slots=True)
class FtsQuery:
    expression: str                 # the FTS5 MATCH expression
    terms: tuple[Term, ...]         # what is searched for, in order
    notes: tuple[str, ...] = ()     # what was changed in the query, for the user

    def describe(self) -> str:
        return " ".join(term.describe() for term in self.terms)


def is_token_char(char: str) -> bool:
    """True for characters the unicode61 tokenizer keeps inside tokens (L*, N*, Co)."""
    if char.isascii():
        return char.isalnum()
    category = unicodedata.category(char)
    return category[0] in "LN" or category == "Co"


def words_of(text: str) -> list[str]:
    """The tokens of ``text`` as unicode61 sees them (case kept; SQLite folds case itself)."""
    words: list[str] = []
    current: list[str] = []
    for char in text:
        if is_token_char(char):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return [word[:MAX_WORD_CHARS] for word in words]


def _clean(text: str) -> str:
    # NUL ends an FTS5 string early ("unterminated string"), so control characters go first.
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)


def parse_terms(text: str) -> tuple[list[Term], list[str]]:
    """Split user text into terms; returns the terms and notes about what was ignored."""
    notes: list[str] = []
    text = _clean(text)
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        notes.append(f"only the first {MAX_QUERY_CHARS} characters were searched")
    if text.count('"') % 2 == 1:
        # Drop the last, unmatched quote; the words after it are searched as single words.
        cut = text.rindex('"')
        text = text[:cut] + " " + text[cut + 1:]
        notes.append("an unmatched quote was ignored")
    terms: list[Term] = []
    for match in _PIECE.finditer(text):
        raw = match.group("phrase") if match.group("phrase") is not None else match.group("bare")
        excluded = match.group("neg") == "-"
        prefix = match.group("star") == "*"
        words = words_of(raw)
        if not words:
            continue
        if match.group("phrase") is not None:
            terms.append(Term(tuple(words), prefix=prefix, excluded=excluded))
            continue
        # A bare piece like "foo-bar" or "title:x" is several words; "-" and "*" apply at its ends.
        # A "*" only makes a prefix when it directly follows the word ("foo*", not "foo.*").
        stripped = raw.rstrip("*")
        prefix = (prefix or stripped != raw) and bool(stripped) and is_token_char(stripped[-1])
        for index, word in enumerate(words):
            last = index == len(words) - 1
            terms.append(Term((word,), prefix=prefix and last, excluded=excluded and index == 0))
    if len(terms) > MAX_TERMS:
        terms = terms[:MAX_TERMS]
        notes.append(f"only the first {MAX_TERMS} words were searched")
    return terms, notes


def build_fts_query(text: str) -> FtsQuery:
    """The MATCH expression for a search box query; raises :class:`QueryRefused` when there is
    nothing to search for."""
    terms, notes = parse_terms(text)
    wanted = [term for term in terms if not term.excluded]
    unwanted = [term for term in terms if term.excluded]
    if not wanted:
        if unwanted:
            raise QueryRefused(
                "A search needs at least one word to look for; `-word` only leaves things out "
                "(try `pizza -pineapple`)."
            )
        raise QueryRefused(
            "There is nothing to search for in that query: type one or more words "
            '(`"exact phrase"`, `word*` for a prefix, `-word` to leave one out).'
        )
    ordered = tuple(wanted + unwanted)
    expression = fts5_expression(SearchQuery(tuple(SearchTerm(t.words, t.prefix, t.excluded) for t in ordered)))
    return FtsQuery(expression, ordered, tuple(notes))


def search_query(query: FtsQuery) -> SearchQuery:
    """The parsed terms of ``query`` for a :class:`~bot.storage.search_store.SearchStore` (which
    writes them in its engine's query language)."""
    return SearchQuery(tuple(SearchTerm(term.words, term.prefix, term.excluded) for term in query.terms))


def title_prefix_words(text: str) -> list[str]:
    """For autocomplete: the typed words, each of which must start a word of the title."""
    return words_of(_clean(text)[:MAX_QUERY_CHARS])[:MAX_TERMS]


def build_title_prefix_query(text: str) -> str | None:
    """For autocomplete: every typed word must start a word of the title (the last one may be
    unfinished). ``None`` when nothing was typed that could match."""
    return fts5_title_prefix(title_prefix_words(text))
