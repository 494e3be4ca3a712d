"""The announcement embed, built as plain data and cut to Discord's limits at word boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.model.posts import PostContent
from bot.render.text import cut_at_word, escape_discord_markdown, neutralise_mentions, strip_invisible

# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
TOTAL_LIMIT = 6000
URL_LIMIT = 2048
# The feed title is a label, not a text: a footer of a few words is what fits on a phone.
FOOTER_SHOWN = 256
ACCENT_COLOUR = 0x5865F2
UNTITLED = "Untitled"


@dataclass(frozen=True, slots=True)
class EmbedField:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class AnnouncementEmbed:
    """A Discord embed as plain data; :meth:`to_dict` is the JSON Discord (and discord.py) takes."""

    title: str
    url: str | None
    description: str
    author_name: str | None
    timestamp: datetime
    image_url: str | None
    fields: tuple[EmbedField, ...]
    footer_text: str | None
    colour: int = ACCENT_COLOUR

    def total_length(self) -> int:
        """What Discord counts towards the 6000-character total."""
        return (len(self.title) + len(self.description) + len(self.author_name or "")
                + len(self.footer_text or "") + sum(len(f.name) + len(f.value) for f in self.fields))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "rich", "title": self.title, "color": self.colour,
                                "timestamp": self.timestamp.isoformat()}
        if self.url:
            data["url"] = self.url
        if self.description:
            data["description"] = self.description
        if self.author_name:
            data["author"] = {"name": self.author_name}
        if self.image_url:
            data["image"] = {"url": self.image_url}
        if self.fields:
            data["fields"] = [{"name": f.name, "value": f.value, "inline": f.inline} for f in self.fields]
        if self.footer_text:
            data["footer"] = {"text": self.footer_text}
        return data


def discord_timestamp(moment: datetime, style: str = "f") -> str:
    """``<t:unix:f>``: every reader sees the time in their own time zone."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def one_line(text: str) -> str:
    """Invisible and control characters removed, all whitespace runs made one space."""
    return " ".join(strip_invisible(text).split())


def web_url(url: str | None) -> str | None:
    """``url`` when Discord would accept it as an embed link (http or https, not too long)."""
    if not url or len(url) > URL_LIMIT or any(ch.isspace() for ch in url):
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def distinct_categories(categories: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    names: list[str] = []
    for category in categories:
        name = one_line(category)
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names


def build_embed(post: PostContent) -> AnnouncementEmbed:
    """The announcement of ``post``, within every Discord embed limit.

    The title is shown literally (Discord renders neither mentions nor links in embed titles);
    text that Discord does render (description, field values) has its mentions made inert, on top
    of the ``allowed_mentions`` the cog always sends.
    """
    title = cut_at_word(one_line(post.title), TITLE_LIMIT) or UNTITLED
    author = cut_at_word(one_line(post.author), AUTHOR_LIMIT) if post.author else ""
    footer = cut_at_word(one_line(post.feed_title), FOOTER_SHOWN) if post.feed_title else ""
    fields = [EmbedField("Published", discord_timestamp(post.published_at), inline=True)]
    categories = distinct_categories(post.categories)
    if categories:
        shown = ", ".join(neutralise_mentions(escape_discord_markdown(name)) for name in categories)
        fields.append(EmbedField("Categories", cut_at_word(shown, FIELD_VALUE_LIMIT), inline=True))
    description = cut_at_word(neutralise_mentions(strip_invisible(post.summary).strip()), DESCRIPTION_LIMIT)
    embed = AnnouncementEmbed(
        title=title, url=web_url(post.canonical_url), description=description,
        author_name=author or None, timestamp=post.published_at, image_url=web_url(post.image_url),
        fields=tuple(fields), footer_text=footer or None,
    )
    excess = embed.total_length() - TOTAL_LIMIT
    if excess > 0:
        # Only the description can be long enough to matter; it gives way first.
        description = cut_at_word(description, max(0, len(description) - excess))
        embed = AnnouncementEmbed(
            title=embed.title, url=embed.url, description=description, author_name=embed.author_name,
            timestamp=embed.timestamp, image_url=embed.image_url, fields=embed.fields,
            footer_text=embed.footer_text,
        )
    return embed
