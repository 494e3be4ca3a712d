"""Per-feed filters: which new posts of a feed are announced.

A filter has an include rule and an exclude rule, each optional. A post is announced only if its
title, categories or summary match the include rule (when there is one) and do not match the
exclude rule. A rule is either

* words, separated by commas or spaces, matched case-insensitively as whole words (``python,
  rust`` matches "Rust 2.0 is out" but not "rusty"); a post matches when it has any of them; or
* a regular expression between slashes (``/release v\\d+/``), case-insensitive, at most
  :data:`MAX_PATTERN_LENGTH` characters, compiled with the ``regex`` module and matched with a time
  limit of :data:`MATCH_TIMEOUT_SECONDS` per match, so a catastrophic pattern (``/(a+)+$/``) cannot
  stall the bot: a match that runs out of time counts as no match (logged once per pattern).

Matching runs in a worker thread (``regex`` releases the GIL while it matches), never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from bot.model.posts import Entry

log = logging.getLogger(__name__)

MAX_PATTERN_LENGTH = 200
MAX_WORDS = 50
MATCH_TIMEOUT_SECONDS = 0.25  # wall-clock time: generous, so a busy machine does not drop an innocent post
_timed_out: set[str] = set()  # patterns whose time-out was logged already


class FilterError(ValueError):
    """A rule that cannot be used; the message says why, for the admin."""


@dataclass(frozen=True, slots=True)
class Rule:
    text: str  # as the admin typed it (stored and shown)
    pattern: Any  # a compiled regex.Pattern
    is_regex: bool

    def matches(self, text: str) -> bool:
        try:
            return self.pattern.search(text, timeout=MATCH_TIMEOUT_SECONDS, concurrent=True) is not None
        except TimeoutError:
            if self.text not in _timed_out:
                _timed_out.add(self.text)
                log.warning("feed filter %s took longer than %.0f ms on a post and counts as no match there; "
                            "simplify the expression", self.text[:MAX_PATTERN_LENGTH + 2],
                            MATCH_TIMEOUT_SECONDS * 1000)
            return False


def parse_rule(text: str | None) -> Rule | None:
    """A rule from what the admin typed (None or blank: no rule); :class:`FilterError` if unusable."""
    text = (text or "").strip()
    if not text:
        return None
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        source = text[1:-1]
        if not source:
            raise FilterError("the regular expression between the slashes is empty")
        if len(source) > MAX_PATTERN_LENGTH:
            raise FilterError(f"the regular expression is {len(source)} characters long; at most "
                              f"{MAX_PATTERN_LENGTH} are allowed")
        try:
            pattern = regex.compile(source, regex.IGNORECASE | regex.V0)
        except regex.error as error:
            raise FilterError(f"`{source[:60]}` is not a valid regular expression ({error})") from error
        return Rule(text, pattern, True)
    words = [word for word in regex.split(r"[\s,]+", text) if word]
    if len(words) > MAX_WORDS:
        raise FilterError(f"{len(words)} words; at most {MAX_WORDS} are allowed")
    alternatives = "|".join(regex.escape(word) for word in dict.fromkeys(w.casefold() for w in words))
    return Rule(" ".join(words), regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", regex.IGNORECASE), False)


@dataclass(frozen=True, slots=True)
class FeedFilter:
    include: Rule | None
    exclude: Rule | None

    @classmethod
    def parse(cls, include: str | None, exclude: str | None) -> FeedFilter:
        return cls(parse_rule(include), parse_rule(exclude))

    @property
    def empty(self) -> bool:
        return self.include is None and self.exclude is None

    def keeps(self, title: str, categories: Iterable[str], summary: str) -> bool:
        # Each field on its own, so ^ and $ mean the start and end of the title (or summary); the
        # categories as one line, "a, b, c".
        fields = [text for text in (title, ", ".join(categories), summary) if text]
        if self.include is not None and not any(self.include.matches(text) for text in fields):
            return False
        return self.exclude is None or not any(self.exclude.matches(text) for text in fields)

    def describe(self) -> str:
        parts = []
        if self.include is not None:
            parts.append(f"include {self.include.text}")
        if self.exclude is not None:
            parts.append(f"exclude {self.exclude.text}")
        return "; ".join(parts) or "none"


async def dropped_identities(feed_filter: FeedFilter, entries: Sequence[Entry]) -> frozenset[str]:
    """The identities of the entries the filter drops, decided in a worker thread."""
    if feed_filter.empty or not entries:
        return frozenset()

    def decide() -> frozenset[str]:
        return frozenset(entry.identity for entry in entries
                         if not feed_filter.keeps(entry.title, entry.categories, entry.summary))

    return await asyncio.to_thread(decide)
