"""The one place the blog side turns a link into the canonical form stored in ``posts``."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.feeds.urls import canonicalize_url

MAX_URL_LENGTH = 2048


class BadUrl(ValueError):
    """The text is not an http(s) link we can look up; the message says why."""


def canonical_post_url(url: str) -> str:
    """The canonical form of a post link, as the feed code stores it; raises :class:`BadUrl`."""
    text = url.strip()
    if not text:
        raise BadUrl("the url is empty")
    if len(text) > MAX_URL_LENGTH:
        raise BadUrl(f"the url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise BadUrl("the url could not be parsed") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadUrl("the url must be an absolute http:// or https:// link to a post")
    try:
        return canonicalize_url(text)
    except ValueError:
        raise BadUrl("the url could not be parsed") from None
