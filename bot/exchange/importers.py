"""Import old blog comments from a WordPress WXR or a Disqus XML export.

Files are parsed with defusedxml (no DTDs, no entity expansion, no external fetches) as a stream,
so a large export does not sit in memory as a tree. Each thread of comments is matched to a
known post by its canonical link (then by guid); comments become archived rows of that post with
negative message ids, shown on the blog but never posted into Discord. Keys from the file make a
second import of the same file add nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from defusedxml import ElementTree as SafeElementTree

from bot.render.html_to_discord import html_to_discord, html_to_plain_text
from bot.storage import blog
from bot.storage.blog import ImportedComment
from bot.storage.db import Database, utcnow
from bot.web.urls import BadUrl, canonical_post_url

# WordPress.com writes https:// namespaces, self-hosted WordPress http:// ones.
WP_NAMESPACES = ("{http://wordpress.org/export/", "{https://wordpress.org/export/")
DISQUS_NS = "{http://disqus.com}"
DSQ_ID = "{http://disqus.com/disqus-internals}id"
_BLOCK_TAG = re.compile(r"<(p|br|div|blockquote|ul|ol|pre|h[1-6])\b", re.IGNORECASE)
ProgressCallback = Callable[[int], None]
WRITE_GROUP = 50  # threads stored per transaction


class ImportFileError(Exception):
    """The file is not an export of the expected kind; the message says what is wrong."""


@dataclass(slots=True)
class ImportThread:
    """The comments of one post of the old comment system."""

    link: str
    title: str
    guid: str | None = None
    comments: list[ImportedComment] = field(default_factory=list)


@dataclass(slots=True)
class ParsedExport:
    threads: list[ImportThread]
    skipped_comments: int = 0  # spam, pingbacks, trackbacks
    orphan_comments: int = 0  # comments of a thread the file does not describe
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SkippedThread:
    link: str
    title: str
    comments: int


@dataclass(slots=True)
class ImportReport:
    threads: int = 0  # threads with comments in the file
    matched: int = 0
    added: int = 0
    already_present: int = 0
    skipped_comments: int = 0
    orphan_comments: int = 0
    skipped_threads: list[SkippedThread] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unmatched_comments(self) -> int:
        return sum(thread.comments for thread in self.skipped_threads)


# ---------------------------------------------------------------------------------------------
# Reading


class _CountingReader(io.RawIOBase):
    """A binary file that reports how far it was read, and skips junk before the first ``<``."""

    def __init__(self, raw: IO[bytes], on_read: ProgressCallback | None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.position = 0
        self.skipped_prefix = b""
        head = raw.read(4096)
        start = head.find(b"<")
        if start > 0 and head[:start].strip(b" \t\r\n\xef\xbb\xbf"):
            self.skipped_prefix = head[:start]
            head = head[start:]
        self._pending = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pending:
            size = min(len(view), len(self._pending))
            view[:size] = self._pending[:size]
            self._pending = self._pending[size:]
        else:
            data = self._raw.read(len(view))
            size = len(data)
            view[:size] = data
        self.position += size
        if self._on_read is not None:
            self._on_read(self.position)
        return size


class _NotWellFormed(ImportFileError):
    pass


# An attribute value without quotes (``dsq:id=123``): expat refuses it; some exports have them.
_UNQUOTED_ATTRIBUTE = re.compile(rb"(<[^<>!?]*?\s[A-Za-z_][-\w:.]*=)([^\"'\s>/]+)")


def _events(source: IO[bytes], name: str, on_read: ProgressCallback | None,
            notes: list[str]) -> Iterator[tuple[str, Any]]:
    reader = _CountingReader(source, on_read)
    if reader.skipped_prefix:
        notes.append(f"ignored {len(reader.skipped_prefix)} stray byte(s) before the XML declaration")
    try:
        yield from SafeElementTree.iterparse(io.BufferedReader(reader), events=("start", "end"))
    except SafeElementTree.ParseError as error:
        raise _NotWellFormed(f"{name} is not well-formed XML: {error}") from None
    except (SafeElementTree.DTDForbidden, SafeElementTree.EntitiesForbidden,
            SafeElementTree.ExternalReferenceForbidden) as error:
        raise ImportFileError(f"{name} declares a DTD or entities, which imports refuse: {error}") from None


def _parse_leniently(path: Path, parse: Callable[[Iterator[tuple[str, Any]], ParsedExport], None],
                     on_read: ProgressCallback | None) -> ParsedExport:
    """Parse the file as a stream; if it is not well-formed only because of unquoted attribute
    values, parse a repaired copy instead and say so in the notes."""
    parsed = ParsedExport(threads=[])
    try:
        with path.open("rb") as source:
            parse(_events(source, str(path), on_read, parsed.notes), parsed)
        return parsed
    except _NotWellFormed as error:
        data = path.read_bytes()
        repaired, count = _UNQUOTED_ATTRIBUTE.subn(rb'\1"\2"', data)
        if count == 0:
            raise
        parsed = ParsedExport(threads=[])
        try:
            parse(_events(io.BytesIO(repaired), str(path), on_read, parsed.notes), parsed)
        except _NotWellFormed:
            raise error from None
        parsed.notes.append(f"the file is not well-formed XML; quoted {count} unquoted attribute value(s) "
                            "to read it")
        return parsed


def _text(element: Any) -> str:
    return (element.text or "").strip() if element is not None else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _wp_child(element: Any, name: str) -> Any:
    for child in element:
        if isinstance(child.tag, str) and child.tag.startswith(WP_NAMESPACES) and _local(child.tag) == name:
            return child
    return None


def _parse_wp_date(text: str) -> datetime | None:
    text = text.strip()
    if not text or text.startswith("0000"):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def comment_markdown(raw_html: str) -> tuple[str, str]:
    """(Discord markdown, plain text) of a comment body from an old system (HTML with newlines)."""
    body = raw_html.strip()
    if body and not _BLOCK_TAG.search(body):
        # WordPress keeps comments as typed and adds paragraphs when showing them; so do we.
        paragraphs = re.split(r"\n\s*\n", body)
        body = "".join("<p>" + paragraph.strip().replace("\n", "<br>") + "</p>" for paragraph in paragraphs)
    return html_to_discord(body), html_to_plain_text(body)


def _fallback_key(*parts: str) -> str:
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _canonical_or_raw(link: str) -> str:
    try:
        return canonical_post_url(link)
    except BadUrl:
        return link.strip()


def parse_wxr(path: Path, on_read: ProgressCallback | None = None) -> ParsedExport:
    """The comments of every item of a WordPress export (WXR 1.0 to 1.2)."""

    def parse(events: Iterator[tuple[str, Any]], parsed: ParsedExport) -> None:
        saw_channel = False
        depth = 0
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1 and element.tag != "rss":
                    raise ImportFileError(f"{path} is not a WordPress export (WXR): its root is "
                                          f"<{_local(element.tag)}>, expected <rss>")
                saw_channel = saw_channel or element.tag == "channel"
                continue
            depth -= 1
            if element.tag == "item":
                _read_wxr_item(element, parsed)
                element.clear()
        if not saw_channel:
            raise ImportFileError(f"{path} is not a WordPress export (WXR): no <channel>")

    return _parse_leniently(path, parse, on_read)


def _read_wxr_item(item: Any, parsed: ParsedExport) -> None:
    link = _canonical_or_raw(_text(item.find("link")))
    thread = ImportThread(link=link, title=html.unescape(_text(item.find("title"))),
                          guid=_text(item.find("guid")) or None)
    for element in item:
        if not (isinstance(element.tag, str) and element.tag.startswith(WP_NAMESPACES)
                and _local(element.tag) == "comment"):
            continue
        approved = _text(_wp_child(element, "comment_approved")).lower()
        kind = _text(_wp_child(element, "comment_type")).lower()
        if approved == "spam" or kind in ("pingback", "trackback"):
            parsed.skipped_comments += 1
            continue
        comment_id = _text(_wp_child(element, "comment_id"))
        author = _text(_wp_child(element, "comment_author")) or "Anonymous"
        raw_date = _text(_wp_child(element, "comment_date_gmt"))
        local_date = _text(_wp_child(element, "comment_date"))
        created = _parse_wp_date(raw_date) or _parse_wp_date(local_date) or utcnow()
        content_html = (_wp_child(element, "comment_content").text or "") \
            if _wp_child(element, "comment_content") is not None else ""
        parent = _text(_wp_child(element, "comment_parent"))
        key = f"{link}#{comment_id}" if comment_id else _fallback_key(link, author, raw_date, content_html)
        markdown, plain = comment_markdown(content_html)
        thread.comments.append(ImportedComment(
            origin="wxr", origin_key=key,
            parent_key=f"{link}#{parent}" if parent and parent != "0" else None,
            author_name=author[:200], content=markdown, clean_content=plain, created_at=created,
            deleted=approved == "trash", hidden=approved not in ("1", "approve", "approved", "trash"),
        ))
    if thread.comments:
        parsed.threads.append(thread)


def parse_disqus(path: Path, on_read: ProgressCallback | None = None) -> ParsedExport:
    """The posts of a Disqus export grouped by thread (threads and posts may come in any order)."""

    def parse(events: Iterator[tuple[str, Any]], parsed: ParsedExport) -> None:
        threads: dict[str, ImportThread] = {}
        posts: list[tuple[str, ImportedComment]] = []
        depth = 0
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1 and element.tag != DISQUS_NS + "disqus":
                    raise ImportFileError(f"{path} is not a Disqus export: its root is <{_local(element.tag)}>, "
                                          'expected <disqus xmlns="http://disqus.com">')
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == DISQUS_NS + "thread":
                thread_id = element.get(DSQ_ID, "")
                link = _text(element.find(DISQUS_NS + "link"))
                if thread_id and link:
                    threads[thread_id] = ImportThread(link=_canonical_or_raw(link),
                                                      title=_text(element.find(DISQUS_NS + "title")),
                                                      guid=_text(element.find(DISQUS_NS + "id")) or None)
            elif element.tag == DISQUS_NS + "post":
                _read_disqus_post(element, parsed, posts)
            element.clear()
        for thread_id, comment in posts:
            thread = threads.get(thread_id)
            if thread is None:
                parsed.orphan_comments += 1
            else:
                thread.comments.append(comment)
        parsed.threads = [thread for thread in threads.values() if thread.comments]

    return _parse_leniently(path, parse, on_read)


def _read_disqus_post(element: Any, parsed: ParsedExport, posts: list[tuple[str, ImportedComment]]) -> None:
    if _text(element.find(DISQUS_NS + "isSpam")).lower() == "true":
        parsed.skipped_comments += 1
        return
    post_id = element.get(DSQ_ID, "")
    thread = element.find(DISQUS_NS + "thread")
    thread_id = thread.get(DSQ_ID, "") if thread is not None else ""
    parent = element.find(DISQUS_NS + "parent")
    parent_id = parent.get(DSQ_ID, "") if parent is not None else ""
    author = element.find(DISQUS_NS + "author")
    name = _text(author.find(DISQUS_NS + "name")) if author is not None else ""
    username = _text(author.find(DISQUS_NS + "username")) if author is not None else ""
    message = element.find(DISQUS_NS + "message")
    content_html = (message.text or "") if message is not None else ""
    created_text = _text(element.find(DISQUS_NS + "createdAt"))
    deleted = _text(element.find(DISQUS_NS + "isDeleted")).lower() == "true"
    markdown, plain = comment_markdown(content_html)
    key = post_id or _fallback_key(thread_id, name, created_text, content_html)
    posts.append((thread_id, ImportedComment(
        origin="disqus", origin_key=key, parent_key=parent_id or None,
        author_name=(name or username or "Anonymous")[:200], content=markdown, clean_content=plain,
        created_at=_parse_iso(created_text) or utcnow(), deleted=deleted)))


# ---------------------------------------------------------------------------------------------
# Storing


def _other_scheme(link: str) -> str | None:
    """Old comment systems often kept http:// links of posts that moved to https://."""
    if link.startswith("http://"):
        return "https://" + link.removeprefix("http://")
    if link.startswith("https://"):
        return "http://" + link.removeprefix("https://")
    return None


async def _matching_post(database: Database, thread: ImportThread) -> blog.BlogPost | None:
    """The known post of a thread: by canonical link, by guid, then by the link's other scheme."""
    post = await blog.post_by_url(database, thread.link)
    if post is None and thread.guid:
        post = await blog.post_by_guid(database, thread.guid)
        if post is None and thread.guid.startswith(("http://", "https://")):
            post = await blog.post_by_url(database, _canonical_or_raw(thread.guid))
    swapped = _other_scheme(thread.link)
    if post is None and swapped is not None:
        post = await blog.post_by_url(database, swapped)
    return post


async def import_threads(database: Database, parsed: ParsedExport,
                         on_thread: ProgressCallback | None = None) -> ImportReport:
    """Store every matched thread's comments; unmatched threads are reported, not stored."""
    report = ImportReport(threads=len(parsed.threads), skipped_comments=parsed.skipped_comments,
                          orphan_comments=parsed.orphan_comments, notes=list(parsed.notes))
    pending: list[Awaitable[blog.ImportOutcome]] = []

    async def store_pending() -> None:
        # Submitted together, the writes share one transaction instead of one commit each.
        for outcome in await asyncio.gather(*pending):
            report.added += outcome.added
            report.already_present += outcome.already_present
        pending.clear()

    for index, thread in enumerate(parsed.threads, start=1):
        post = await _matching_post(database, thread)
        if post is None:
            report.skipped_threads.append(SkippedThread(link=thread.link, title=thread.title,
                                                        comments=len(thread.comments)))
        else:
            pending.append(database.write(blog.store_imported_comments(post.id, thread.comments)))
            report.matched += 1
        if len(pending) >= WRITE_GROUP:
            await store_pending()
        if on_thread is not None:
            on_thread(index)
    await store_pending()
    return report
