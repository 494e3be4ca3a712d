"""Plain-text helpers for Discord output: cutting, mention neutralising, escaping.

Lengths are counted in Python ``str`` code points, which is how Discord counts
message content and thread-name lengths closely enough for our limits.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "ELLIPSIS",
    "THREAD_NAME_FALLBACK",
    "THREAD_NAME_LIMIT",
    "ZWSP",
    "cut_at_word",
    "escape_discord_markdown",
    "neutralise_mentions",
    "strip_invisible",
    "thread_name",
]

ELLIPSIS = "…"
ZWSP = "\u200b"
THREAD_NAME_LIMIT = 100
THREAD_NAME_FALLBACK = "Discussion"

# Zero-width and bidi-control characters that can hide or spoof text.  U+200D
# (zero-width joiner) is deliberately kept: it glues emoji sequences together.
_INVISIBLE_CHARS = (
    "\u00ad"  # soft hyphen
    "\u180e"  # mongolian vowel separator
    "\u200b\u200c\u200e\u200f"  # zero-width space / non-joiner, LRM / RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # BOM / zero-width no-break space
)
# C0/C1 controls except tab and newline, DEL, lone surrogates, invisibles.
_STRIP_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff" + _INVISIBLE_CHARS + "]")

_MENTION_EVERYONE_RE = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_MENTION_ID_RE = re.compile(r"<@([!&]?\d+)>")


def strip_invisible(text: str) -> str:
    """Remove control characters (except ``\\t`` and ``\\n``) and zero-width/bidi tricks.

    ``\\r\\n`` and lone ``\\r`` become ``\\n`` first so line structure survives.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _STRIP_RE.sub("", text)


def cut_at_word(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """Return ``text`` unchanged if it fits in ``limit``, else cut it at a word boundary.

    The result, including ``ellipsis``, is never longer than ``limit``.  Without
    the ellipsis it is always a prefix of ``text``.  A single word longer than
    the budget is hard-cut so the result is never empty when the input had
    non-space content (and ``limit`` leaves room for at least one character).
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if len(ellipsis) >= limit:
        # No room for an ellipsis plus content: a plain hard cut is the best we can do.
        return text[:limit]
    budget = limit - len(ellipsis)
    head = text[:budget]
    if text[budget].isspace():
        # The cut falls exactly on a boundary.
        candidate = head.rstrip()
    else:
        candidate = ""
        for index in range(len(head) - 1, 0, -1):
            if head[index].isspace():
                candidate = head[:index].rstrip()
                break
    if not candidate.strip():
        # One giant word (or only leading whitespace before it): hard cut.
        candidate = head.rstrip() or head
    return candidate + ellipsis


def neutralise_mentions(text: str) -> str:
    """Make ``@everyone``, ``@here`` and ``<@id>``/``<@!id>``/``<@&id>`` inert in Discord.

    A zero-width space is inserted right after the ``@``; the text still reads the
    same.  This is a second line of defence next to ``allowed_mentions=none``.
    """
    text = _MENTION_EVERYONE_RE.sub(lambda m: "@" + ZWSP + m.group(1), text)
    return _MENTION_ID_RE.sub(lambda m: "<@" + ZWSP + m.group(1) + ">", text)


# Characters that format anywhere in a line.
_INLINE_SPECIAL_RE = re.compile(r"([\\*_~|`\[\]<])")
# Line starts that format: quotes, headings, subtext, bullet and numbered lists.
_LINE_START_RE = re.compile(
    r"^([ \t]*)(>(?=\s|>>)|#{1,3}(?=\s)|-(?=[#\s])|\+(?=\s)|\d+(?=[.)]\s))", re.MULTILINE
)
_URL_RE = re.compile(r"https?://[^\s<>]+")


def _escape_segment(text: str) -> str:
    text = _INLINE_SPECIAL_RE.sub(r"\\\1", text)
    return text


def escape_discord_markdown(text: str) -> str:
    """Escape ``text`` so Discord shows it literally (for titles, names, authors).

    Inline markers (``\\ * _ ~ | ` [ ] <``) are always backslash-escaped; ``>``,
    ``#``, ``-``, ``+`` and ``1.`` only where they would start a quote, heading,
    subtext or list, so ordinary text stays readable.  Bare ``http(s)`` URLs are
    left alone (as discord.py's ``escape_markdown`` does) so they stay clickable.
    """
    parts: list[str] = []
    pos = 0
    for match in _URL_RE.finditer(text):
        parts.append(_escape_segment(text[pos : match.start()]))
        parts.append(match.group(0))
        pos = match.end()
    parts.append(_escape_segment(text[pos:]))
    escaped = "".join(parts)

    def _line_start(m: re.Match[str]) -> str:
        marker = m.group(2)
        if marker.isdigit():
            return m.group(1) + marker + "\\"  # "1\. " - escape the dot that follows
        return m.group(1) + "\\" + marker

    escaped = _LINE_START_RE.sub(_line_start, escaped)
    return escaped


def thread_name(title: str) -> str:
    """A Discord thread name (1..100 characters) derived from a post title."""
    cleaned = strip_invisible(title)
    cleaned = "".join(
        " " if ch.isspace() else ch for ch in cleaned if unicodedata.category(ch) not in ("Cs",)
    )
    cleaned = "".join(ch for ch in cleaned if unicodedata.category(ch) != "Cc")
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        return THREAD_NAME_FALLBACK
    name = cut_at_word(cleaned, THREAD_NAME_LIMIT)
    return name if name.strip() else THREAD_NAME_FALLBACK
