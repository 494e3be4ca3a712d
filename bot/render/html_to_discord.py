"""Convert (possibly hostile) feed HTML into Discord-ready markdown or plain text.

Parsing is done by BeautifulSoup's ``html.parser`` and the markdown is produced by
markdownify; this module only configures them and post-processes the result.
None of the public functions raise on arbitrary input.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from bs4.element import CData, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction
from markdownify import MarkdownConverter

from bot.render.text import cut_at_word, neutralise_mentions, strip_invisible

__all__ = ["DROPPED_TAGS", "first_image_src", "html_to_discord", "html_to_plain_text"]

#: Elements whose whole content is removed before conversion.
DROPPED_TAGS: frozenset[str] = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "form",
        "noscript",
        "template",
        "head",
        "title",
        "meta",
        "link",
        "base",
        "svg",
        "math",
        "canvas",
        "audio",
        "video",
        "select",
        "textarea",
        "button",
        "dialog",
    }
)

_LINK_SCHEMES = ("http", "https", "mailto")
_IMAGE_SCHEMES = ("http", "https")

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip

_SPACE_RUN_RE = re.compile(r"(?<=\S)[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}")
_ODD_SPACE_RE = re.compile(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_FENCE_RE = re.compile(r"^\s*```")


def _absolute_url(raw: str | None, base_url: str | None, schemes: tuple[str, ...]) -> str | None:
    """Resolve ``raw`` against ``base_url``; ``None`` unless the result uses an allowed scheme."""
    if not raw:
        return None
    url = strip_invisible(raw).strip()
    # Browsers ignore embedded tabs/newlines in URLs ("java\nscript:"); so do we.
    url = re.sub(r"[\t\n\r]+", "", url)
    if not url:
        return None
    try:
        if base_url:
            url = urljoin(base_url, url)
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme in ("http", "https") and not parts.netloc:
        return None
    if scheme == "mailto" and not parts.path:
        return None
    return url


def _markdown_url(url: str) -> str:
    """Make a URL safe to put inside markdown ``(...)``: no spaces, brackets or angle brackets."""
    return quote(url, safe="/:?#@!$&'*+,;=%~-._")


def _clean_soup(html: str) -> BeautifulSoup:
    soup = BeautifulSoup(html, "html.parser")
    for node in list(soup.find_all(string=True)):
        if isinstance(node, Comment | Doctype | Declaration | ProcessingInstruction | CData):
            node.extract()
    for tag in list(soup.find_all(DROPPED_TAGS)):
        tag.decompose()
    return soup


def _escape_md(text: str) -> str:
    return re.sub(r"([\\*_~|`\[\]<>])", r"\\\1", text)


class _DiscordConverter(MarkdownConverter):
    """markdownify configured for Discord's markdown dialect."""

    def __init__(self, base_url: str | None) -> None:
        super().__init__(
            autolinks=False,
            bullets="-",
            escape_asterisks=True,
            escape_underscores=True,
            escape_misc=False,
            heading_style="atx",
            strip_document="strip",
            strip_pre="strip",
            strong_em_symbol="*",
        )
        self._base_url = base_url

    def convert_a(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        href = el.get("href")
        url = _absolute_url(href if isinstance(href, str) else None, self._base_url, _LINK_SCHEMES)
        label = text.strip()
        if url is None or "_noformat" in parent_tags:
            return text
        if not label:
            return ""
        # Discord refuses to render masked links whose label contains a link; keep the label plain.
        label = re.sub(r"\s+", " ", label).replace("](", "]\\(")
        lead = " " if text[:1].isspace() else ""
        tail = " " if text[-1:].isspace() else ""
        if label.replace("\\", "") in (url, url.removeprefix("mailto:")):
            return f"{lead}{_markdown_url(url)}{tail}"
        return f"{lead}[{label}]({_markdown_url(url)}){tail}"

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        alt = el.get("alt")
        if not isinstance(alt, str):
            return ""
        return _escape_md(" ".join(alt.split()))

    def convert_hN(self, n: int, el: Tag, text: str, parent_tags: set[str]) -> str:
        if "_inline" in parent_tags:
            return text
        title = " ".join(text.split())
        if not title:
            return ""
        return f"\n\n**{title}**\n\n"

    def convert_hr(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return "\n\n"


def _tidy(markdown: str) -> str:
    """Collapse whitespace and blank-line runs outside code fences."""
    lines: list[str] = []
    in_fence = False
    for raw_line in strip_invisible(markdown).split("\n"):
        if _FENCE_RE.match(raw_line):
            in_fence = not in_fence
            lines.append(raw_line.rstrip())
        elif in_fence:
            lines.append(raw_line.rstrip())
        else:
            line = _SPACE_RUN_RE.sub(" ", _ODD_SPACE_RE.sub(" ", raw_line)).rstrip()
            if not line.strip():
                if lines and lines[-1] == "":
                    continue
                line = ""
            lines.append(line)
    return "\n".join(lines).strip("\n")


def _cut_markdown(text: str, limit: int) -> str:
    """Cut markdown at a word boundary, avoiding half links and unclosed code fences."""
    if len(text) <= limit:
        return text
    closing = "\n```"
    cut = cut_at_word(text, limit)
    body = cut.removesuffix("…")
    # Drop a masked link that was cut in half: "[label](http://exa…".
    open_bracket = body.rfind("[")
    if open_bracket != -1 and "](" in body[open_bracket:] and ")" not in body[body.rfind("](") :]:
        body = body[:open_bracket].rstrip()
        cut = body + "…"
    if body.count("```") % 2 == 1:
        cut = cut_at_word(text, max(limit - len(closing), 1))
        body = cut.removesuffix("…")
        if body.count("```") % 2 == 1:
            cut = body + closing + "…" if len(body) + len(closing) + 1 <= limit else body[: limit - 1] + "…"
    return cut[:limit]


def html_to_discord(html: str, *, base_url: str | None = None, limit: int | None = None) -> str:
    """Convert feed HTML to Discord markdown.

    Dangerous elements are dropped with their content, links are made absolute
    (only ``http``/``https``/``mailto`` survive), images become their alt text,
    headings become bold lines, and mentions are neutralised.  If ``limit`` is
    given the result is cut at a word boundary to at most ``limit`` characters.
    """
    try:
        soup = _clean_soup(html)
        markdown = _DiscordConverter(base_url).convert_soup(soup)
    except RecursionError:
        # Absurdly deep nesting: fall back to the flat text rendering.
        markdown = _escape_md(html_to_plain_text(html))
    text = neutralise_mentions(_tidy(markdown))
    if limit is not None:
        text = _cut_markdown(text, limit)
    return text


def html_to_plain_text(html: str) -> str:
    """Visible text of ``html``: entities decoded, blocks on their own lines, whitespace collapsed."""
    soup = _clean_soup(html)
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    chunks: list[str] = []
    for node in soup.descendants:
        if isinstance(node, NavigableString):
            chunks.append(str(node))
    lines = (" ".join(line.split()) for line in strip_invisible("".join(chunks)).split("\n"))
    return "\n".join(line for line in lines if line)


def first_image_src(html: str, base_url: str | None) -> str | None:
    """The first ``<img>`` source in ``html`` as an absolute ``http(s)`` URL, or ``None``.

    ``src`` is preferred; lazy-loading ``data-src`` and the first ``srcset`` entry
    are used when ``src`` is missing or not http(s) (e.g. a ``data:`` placeholder).
    """
    soup = BeautifulSoup(html, "html.parser")
    for img in soup.find_all("img"):
        candidates: list[str] = []
        for attr in ("src", "data-src", "data-lazy-src"):
            value = img.get(attr)
            if isinstance(value, str):
                candidates.append(value)
        srcset = img.get("srcset")
        if isinstance(srcset, str) and srcset.strip():
            candidates.append(srcset.split(",")[0].strip().split(" ")[0])
        for candidate in candidates:
            url = _absolute_url(candidate, base_url, _IMAGE_SCHEMES)
            if url is not None:
                return url
    return None
