"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), read from JSON: feedparser cannot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.feeds.errors import FeedSyntaxError, NotAFeed

JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"


def load_json_feed(text: str) -> Mapping[str, Any]:
    """The top-level object of a JSON Feed, or a :class:`FeedError` saying why it is not one."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise FeedSyntaxError(f"JSON error at line {error.lineno}: {error.msg}") from None
    except RecursionError:
        raise FeedSyntaxError("JSON error: the document is nested too deeply") from None
    if not isinstance(document, dict):
        raise NotAFeed("not a feed: the server sent JSON that is not a JSON Feed")
    version = document.get("version")
    looks_like_feed = isinstance(version, str) and version.startswith(JSON_FEED_VERSION_PREFIX)
    if not looks_like_feed and not (isinstance(document.get("items"), list) and "title" in document):
        raise NotAFeed("not a feed: the server sent JSON that is not a JSON Feed")
    return document


def text_field(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def item_author(document: Mapping[str, Any], item: Mapping[str, Any]) -> str | None:
    """1.1 ``authors`` or 1.0 ``author``, on the item or else on the feed."""
    for source in (item, document):
        authors = source.get("authors")
        if isinstance(authors, list):
            for author in authors:
                if isinstance(author, dict) and text_field(author, "name"):
                    return text_field(author, "name")
        author = source.get("author")
        if isinstance(author, dict) and text_field(author, "name"):
            return text_field(author, "name")
    return None


def item_tags(item: Mapping[str, Any]) -> list[str]:
    tags = item.get("tags")
    if not isinstance(tags, list):
        return []
    return [tag.strip() for tag in tags if isinstance(tag, str) and tag.strip()]


def item_image(item: Mapping[str, Any]) -> str | None:
    """``image``, else ``banner_image``, else the first image attachment."""
    for key in ("image", "banner_image"):
        value = text_field(item, key)
        if value:
            return value
    attachments = item.get("attachments")
    if isinstance(attachments, list):
        for attachment in attachments:
            if isinstance(attachment, dict) and str(attachment.get("mime_type", "")).startswith("image/"):
                url = text_field(attachment, "url")
                if url:
                    return url
    return None
