"""Render Discord message markdown to safe HTML (for the blog's comment widget) or plain text.

mistune parses a Discord-flavoured dialect (no raw HTML, no images, no tables,
no setext/indented code, headings ``#``..``###`` only, ``-#`` subtext, ``>``/``>>>``
quotes, ``__underline__``, ``||spoilers||``, mentions, custom emoji, timestamps);
nh3 then sanitises the output against an explicit allow-list as the last step.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import mistune
import nh3
from mistune.block_parser import BlockParser
from mistune.core import BlockState, InlineState
from mistune.inline_parser import InlineParser
from mistune.plugins.formatting import strikethrough
from mistune.plugins.url import url as url_plugin

from bot.render.text import strip_invisible

__all__ = ["MentionNames", "discord_markdown_to_html", "discord_markdown_to_text"]

#: Longest message we render; Discord's own maximum is 4000 (Nitro).
MAX_INPUT_CHARS = 20_000
LINK_REL = "nofollow ugc noopener"
_HOST_RE = re.compile(r"[\w.~-]+|\[[0-9a-fA-F:.]+\]")
_HREFLESS_LINK_RE = re.compile(r"<a(?![^>]*\shref=)[^>]*>(.*?)</a>", re.DOTALL)


@dataclass(slots=True)
class MentionNames:
    """Display names for the ids that appear in mentions."""

    users: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _safe_url(url: str) -> str | None:
    """``url`` if it is a well-formed http(s)/mailto URL, else ``None``."""
    candidate = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url))
    try:
        parts = urlsplit(candidate)
        scheme = parts.scheme.lower()
        if scheme == "mailto":
            return candidate if parts.path else None
        if scheme not in ("http", "https"):
            return None
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if not parts.hostname or not _HOST_RE.fullmatch(parts.hostname):
        return None
    return candidate


def _lookup(table: dict[int, str], raw_id: str, unknown: str) -> str:
    try:
        name = table.get(int(raw_id))
    except ValueError:
        name = None
    return name if name else unknown


def _timestamp(seconds: str, style: str) -> tuple[str, str] | None:
    """(ISO datetime attribute, human text) for a ``<t:...>`` timestamp, or None if out of range."""
    try:
        moment = datetime.fromtimestamp(int(seconds), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
    iso = moment.isoformat().replace("+00:00", "Z")
    if style in ("d", "D"):
        text = moment.strftime("%Y-%m-%d")
    else:
        text = moment.strftime("%Y-%m-%d %H:%M UTC")
    return iso, text


# --------------------------------------------------------------------------- inline rules

_MENTION_PATTERN = r"<(?:@[!&]?|#)\d{1,25}>"
_EMOJI_PATTERN = r"<a?:[A-Za-z0-9_~]{1,64}:\d{1,25}>"
_TIMESTAMP_PATTERN = r"<t:-?\d{1,20}(?::[tTdDfFRsS])?>"


def _parse_mention(inline: InlineParser, m: re.Match[str], state: InlineState) -> int:
    raw = m.group(0)[1:-1]
    if raw.startswith("@&"):
        state.append_token({"type": "discord_mention", "raw": raw[2:], "attrs": {"kind": "role"}})
    elif raw.startswith("@"):
        state.append_token({"type": "discord_mention", "raw": raw.lstrip("@!"), "attrs": {"kind": "user"}})
    else:
        state.append_token({"type": "discord_mention", "raw": raw[1:], "attrs": {"kind": "channel"}})
    return m.end()


def _parse_emoji(inline: InlineParser, m: re.Match[str], state: InlineState) -> int:
    name = m.group(0).split(":")[1]
    state.append_token({"type": "discord_emoji", "raw": name})
    return m.end()


def _parse_timestamp(inline: InlineParser, m: re.Match[str], state: InlineState) -> int:
    parts = m.group(0)[1:-1].split(":")
    style = parts[2] if len(parts) > 2 else "f"
    state.append_token({"type": "discord_timestamp", "raw": parts[1], "attrs": {"style": style}})
    return m.end()


_CLOSERS: dict[str, re.Pattern[str]] = {
    # "__" closes after a non-space, non-backslash character and ends a run of underscores,
    # so "___x___" is underline around italics, as in Discord.
    "__": re.compile(r"(?<=[^\s\\])__(?!_)"),
    # Spoilers may have spaces inside the bars: "|| x ||".
    "||": re.compile(r"(?<!\\)\|\|"),
}


def _parse_wrapped(
    inline: InlineParser, m: re.Match[str], state: InlineState, tok_type: str, marker: str
) -> int | None:
    if state.depth >= inline.max_nested_level:
        return None
    pos = m.end()
    close = -1
    for close_match in _CLOSERS[marker].finditer(state.src, pos):
        # A closer inside an inline code span (odd number of backticks before it) does not count.
        if state.src.count("`", pos, close_match.start()) % 2 == 0:
            close = close_match.start()
            break
    if close == -1 or not state.src[pos:close].strip():
        return None
    child = state.copy()
    child.src = state.src[pos:close]
    children = inline.render(child)
    state.append_token({"type": tok_type, "children": children})
    return close + len(marker)


def _parse_underline(inline: InlineParser, m: re.Match[str], state: InlineState) -> int | None:
    return _parse_wrapped(inline, m, state, "underline", "__")


def _parse_spoiler(inline: InlineParser, m: re.Match[str], state: InlineState) -> int | None:
    return _parse_wrapped(inline, m, state, "spoiler", "||")


# --------------------------------------------------------------------------- block rules


def _parse_subtext(block: BlockParser, m: re.Match[str], state: BlockState) -> int:
    state.append_token({"type": "subtext", "text": m.group("subtext_1").strip()})
    return m.end() + 1


def _parse_quote(block: BlockParser, m: re.Match[str], state: BlockState) -> int:
    """Discord quotes: ``> `` lines (no lazy continuation) or ``>>> `` to the end."""
    if m.group(0).startswith(">>>"):
        text = state.src[m.end() :]
        end = state.cursor_max
    else:
        lines: list[str] = []
        pos = state.cursor
        while pos < state.cursor_max:
            line = state.get_line(pos)
            if not re.match(r"> |>\n|>$", line):
                break
            lines.append(line[2:] if line.startswith("> ") else line[1:])
            pos += len(line)
        text = "".join(lines)
        end = pos
    child = state.child_state(text if text.endswith("\n") else text + "\n")
    # Discord does not nest quotes: a "> " inside a quote is literal text.
    rules = [r for r in block.block_quote_rules if r not in ("block_quote", "discord_quote")]
    if state.depth() >= block.max_nested_level - 1:
        rules = [r for r in rules if r != "list"]
    block.parse(child, rules)
    state.append_token({"type": "block_quote", "children": child.tokens})
    return end


# --------------------------------------------------------------------------- renderer


class _DiscordHTMLRenderer(mistune.HTMLRenderer):
    def __init__(self, names: MentionNames) -> None:
        super().__init__(escape=True)
        self._names = names

    def link(self, text: str, url: str, title: str | None = None) -> str:
        safe = _safe_url(url)
        if safe is None:
            return text
        return f'<a href="{html.escape(safe, quote=True)}" rel="{LINK_REL}" target="_blank">{text}</a>'

    def image(self, text: str, url: str, title: str | None = None) -> str:
        # Discord shows "![x](y)" as "!" plus a masked link; we never emit <img>.
        return "!" + self.link(text or html.escape(url), url)

    def inline_html(self, html_text: str) -> str:
        return html.escape(html_text)

    def block_html(self, html_text: str) -> str:
        return "<p>" + html.escape(html_text.strip()) + "</p>\n"

    def heading(self, text: str, level: int, **attrs: Any) -> str:
        tag = f"h{min(level, 3) + 2}"  # h3..h5: comments must not outrank the page's headings
        return f"<{tag}>{text}</{tag}>\n"

    def block_code(self, code: str, info: str | None = None) -> str:
        lang = re.sub(r"[^A-Za-z0-9_+#.-]", "", (info or "").split(" ")[0])[:32]
        cls = f' class="language-{lang}"' if lang else ""
        return f"<pre><code{cls}>{html.escape(code)}</code></pre>\n"

    def underline(self, text: str) -> str:
        return f"<u>{text}</u>"

    def spoiler(self, text: str) -> str:
        return f'<span class="spoiler">{text}</span>'

    def subtext(self, text: str) -> str:
        return f'<p class="subtext"><small>{text}</small></p>\n'

    def discord_mention(self, raw_id: str, kind: str) -> str:
        if kind == "user":
            label = "@" + _lookup(self._names.users, raw_id, "unknown-user")
        elif kind == "role":
            label = "@" + _lookup(self._names.roles, raw_id, "unknown-role")
        else:
            label = "#" + _lookup(self._names.channels, raw_id, "unknown-channel")
        return f'<span class="mention mention-{kind}">{html.escape(label)}</span>'

    def discord_emoji(self, name: str) -> str:
        return f'<span class="emoji">:{html.escape(name)}:</span>'

    def discord_timestamp(self, seconds: str, style: str) -> str:
        parsed = _timestamp(seconds, style)
        if parsed is None:
            return html.escape(f"<t:{seconds}:{style}>")
        iso, text = parsed
        return f'<time datetime="{iso}">{text}</time>'


class _DiscordTextRenderer(mistune.BaseRenderer):
    """Clean text: markup dropped, mentions as names, blocks on their own lines."""

    NAME = "text"

    def __init__(self, names: MentionNames) -> None:
        super().__init__()
        self._names = names
        self._html = _DiscordHTMLRenderer(names)

    def render_token(self, token: dict[str, Any], state: BlockState) -> str:
        kind = token["type"]
        if kind == "discord_mention":
            return html.unescape(
                re.sub(r"<[^>]+>", "", self._html.discord_mention(token["raw"], token["attrs"]["kind"]))
            )
        if kind == "discord_emoji":
            return f":{token['raw']}:"
        if kind == "discord_timestamp":
            parsed = _timestamp(token["raw"], token["attrs"]["style"])
            return parsed[1] if parsed else token["raw"]
        if kind in ("linebreak", "softbreak"):
            return "\n"
        if kind in ("blank_line", "thematic_break"):
            return ""
        if kind == "block_code":
            return str(token["raw"]).rstrip("\n") + "\n"
        if kind == "image":
            return "!" + self.render_tokens(token.get("children", []), state)
        if "children" in token:
            inner = self.render_tokens(token["children"], state)
        else:
            inner = str(token.get("raw", ""))
        if kind in ("paragraph", "heading", "subtext", "block_quote", "list", "list_item", "block_text"):
            return inner.rstrip("\n") + "\n"
        return inner


# --------------------------------------------------------------------------- parser setup

_BLOCK_RULES = ["fenced_code", "atx_heading", "subtext", "discord_quote", "list", "blank_line"]


def _build(renderer: mistune.BaseRenderer) -> mistune.Markdown:
    block = BlockParser(
        block_quote_rules=list(_BLOCK_RULES), list_rules=list(_BLOCK_RULES), max_nested_level=8
    )
    # Discord: backtick fences only, headings #..### followed by a space.
    block.specification["fenced_code"] = r"^(?P<fenced_1> {0,3})(?P<fenced_2>`{3,})[ \t]*(?P<fenced_3>.*?)$"
    block.specification["atx_heading"] = r"^ {0,3}(?P<atx_1>#{1,3})(?P<atx_2>[ \t]+.*?)$"
    block.register("subtext", r"^ {0,3}-#[ \t]+(?P<subtext_1>.*?)$", _parse_subtext, before="list")
    block.register("discord_quote", r"^(?:>>>[ \t]?|>[ \t]|>$)", _parse_quote, before="list")
    block.rules = list(_BLOCK_RULES)

    inline = InlineParser(hard_wrap=True, max_nested_level=8)
    inline.rules = ["escape", "codespan", "emphasis", "link", "link_close", "auto_link", "linebreak"]
    # Separate "*" and "_" runs so "**__x__**" reaches the underline rule at the "__".
    inline.specification["emphasis"] = r"\*+|_+"
    inline.register("discord_mention", _MENTION_PATTERN, _parse_mention, before="emphasis", start_chars="<")
    inline.register("discord_emoji", _EMOJI_PATTERN, _parse_emoji, before="emphasis", start_chars="<")
    inline.register(
        "discord_timestamp", _TIMESTAMP_PATTERN, _parse_timestamp, before="emphasis", start_chars="<"
    )
    inline.register("underline", r"__(?=[^\s])", _parse_underline, before="emphasis", start_chars="_")
    inline.register("spoiler", r"\|\|", _parse_spoiler, before="emphasis", start_chars="|")
    markdown = mistune.Markdown(renderer=renderer, block=block, inline=inline)
    strikethrough(markdown)
    url_plugin(markdown)
    return markdown


_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h3", "h4", "h5", "li", "ol", "p", "pre",
    "small", "span", "strong", "time", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "target"},
    "code": {"class"},
    "ol": {"start"},
    "time": {"datetime"},
}
_CLEANER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=_ALLOWED_ATTRIBUTES,
    link_rel=LINK_REL,
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    allowed_classes={
        "span": {"spoiler", "mention", "mention-user", "mention-role", "mention-channel", "emoji"},
        "p": {"subtext"},
    },
    attribute_filter=lambda tag, attr, value: (
        value
        if not (tag == "code" and attr == "class") or re.fullmatch(r"language-[A-Za-z0-9_+#.-]+", value)
        else None
    ),
    strip_comments=True,
)


def _prepare(content: str) -> str:
    return strip_invisible(content[:MAX_INPUT_CHARS]).replace("\t", "    ")


def discord_markdown_to_html(content: str, *, names: MentionNames | None = None) -> str:
    """Render a Discord message to sanitised HTML safe to inject into the blog page."""
    markdown = _build(_DiscordHTMLRenderer(names or MentionNames()))
    try:
        rendered = markdown(_prepare(content))
    except RecursionError:
        rendered = "<p>" + html.escape(content[:MAX_INPUT_CHARS]).replace("\n", "<br>") + "</p>"
    cleaned = _CLEANER.clean(str(rendered))
    # The sanitiser drops hrefs it cannot parse; a link without a target is just its text.
    return _HREFLESS_LINK_RE.sub(r"\1", cleaned).strip()


def discord_markdown_to_text(content: str, *, names: MentionNames | None = None) -> str:
    """The message's clean text for full-text search: markup stripped, mentions as names."""
    markdown = _build(_DiscordTextRenderer(names or MentionNames()))
    try:
        rendered = str(markdown(_prepare(content)))
    except RecursionError:
        rendered = content[:MAX_INPUT_CHARS]
    lines = (" ".join(line.split()) for line in rendered.split("\n"))
    return "\n".join(line for line in lines if line)
