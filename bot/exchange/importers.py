"""Import old blog comments from a WordPress WXR or a Disqus XML export.

Files are parsed with defusedxml (no DTDs, no entity expansion, no external fetches) as a stream:
every comment is read, checked and converted as soon as its element ends, then dropped from the
tree and kept in a temporary file (:class:`CommentSpool`), so a large export never sits in memory.
A file with a bad comment (no date, a date out of range, a missing field) is refused as a whole,
with one line naming the item, before anything is stored.

Each thread of comments is matched to a known post by its canonical link (then by guid); comments
become archived rows of that post with negative message ids, shown on the blog but never posted
into Discord. Everything is stored by one write operation, so one transaction: an import adds all
of its comments or none. Keys from the file make a second import of the same file add nothing.
"""

from __future__ import annotations

import hashlib
import html
import io
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from defusedxml import ElementTree as SafeElementTree

from bot.render.html_to_discord import html_to_discord, html_to_plain_text
from bot.storage import blog
from bot.storage.blog import ImportedComment, ImportOutcome
from bot.storage.db import Database, WriteOp, utcnow
from bot.storage.sql import Connection
from bot.web.urls import BadUrl, canonical_post_url

# WordPress.com writes https:// namespaces, self-hosted WordPress http:// ones.
WP_NAMESPACES = ("{http://wordpress.org/export/", "{https://wordpress.org/export/")
DISQUS_NS = "{http://disqus.com}"
DSQ_ID = "{http://disqus.com/disqus-internals}id"
_BLOCK_TAG = re.compile(r"<(p|br|div|blockquote|ul|ol|pre|h[1-6])\b", re.IGNORECASE)
ProgressCallback = Callable[[int], None]
# Comments older than this are a broken export (WordPress writes 0000-00-00 or 0001-01-01 for "no date").
EARLIEST_COMMENT = datetime(1990, 1, 1, tzinfo=UTC)
# WordPress's "no GMT date" marker: the local date is used instead.
_NO_WP_DATE = "0000-00-00 00:00:00"
_REPAIR_CHUNK = 1 << 20


class ImportFileError(Exception):
    """The file is not an export of the expected kind, or one of its items is broken; the message
    says what is wrong (and where) in one line."""


@dataclass(slots=True)
class ImportThread:
    """A post of the old comment system, whose comments wait in the spool under ``key``."""

    key: str
    link: str
    title: str
    guid: str | None = None
    comments: int = 0


class CommentSpool:
    """Parsed comments in a temporary file, read back one thread at a time.

    In memory stays only a small index per thread: each comment's key, its parent's key and where
    it is in the file. The file is unlinked from the start (``tempfile.TemporaryFile``).
    """

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()
        self._index: dict[str, list[tuple[str, str | None, int]]] = {}

    def add(self, thread_key: str, comment: ImportedComment) -> None:
        self._file.seek(0, io.SEEK_END)
        offset = self._file.tell()
        pickle.dump(comment, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._index.setdefault(thread_key, []).append((comment.origin_key, comment.parent_key, offset))

    def count(self, thread_key: str) -> int:
        return len(self._index.get(thread_key, ()))

    def keys(self) -> list[str]:
        return list(self._index)

    def comments(self, thread_key: str) -> Iterator[ImportedComment]:
        """The thread's comments, a parent before its replies (otherwise in file order)."""
        entries = self._index.get(thread_key, [])
        for position in blog.parents_first_order([(key, parent) for key, parent, _ in entries]):
            self._file.seek(entries[position][2])
            comment = pickle.load(self._file)  # our own file, written above
            assert isinstance(comment, ImportedComment)
            yield comment

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class ParsedExport:
    """The threads of an export with comments; their comments are in ``spool`` (close it, or use
    ``with``)."""

    threads: list[ImportThread]
    spool: CommentSpool = field(default_factory=CommentSpool)
    skipped_comments: int = 0  # spam, pingbacks, trackbacks
    orphan_comments: int = 0  # comments of a thread the file does not describe
    notes: list[str] = field(default_factory=list)

    def comments(self, thread: ImportThread) -> list[ImportedComment]:
        return list(self.spool.comments(thread.key))

    def close(self) -> None:
        self.spool.close()

    def __enter__(self) -> ParsedExport:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


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
_DECLARED_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


def _declared_encoding(source: IO[bytes]) -> str:
    source.seek(0)
    found = _DECLARED_ENCODING.search(source.read(1024))
    return found.group(1).decode("ascii", "replace") if found else "?"


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
    except (LookupError, ValueError):
        # expat knows UTF-8, UTF-16, ISO-8859-1 and ASCII, Python adds single-byte codecs; the rest fail here.
        raise ImportFileError(
            f"{name} declares the encoding {_declared_encoding(source)!r}, which the importer cannot read; "
            "convert the file to UTF-8 (e.g. with iconv) and fix its <?xml ... encoding=...?> line") from None


def _repaired_copy(path: Path) -> tuple[IO[bytes], int]:
    """A temporary copy of the file with unquoted attribute values quoted, and how many there were.

    Read in chunks cut just after a ``>``: a match lies inside one tag and never holds a ``>``."""
    copy: IO[bytes] = tempfile.TemporaryFile()
    count = 0
    carry = b""
    with path.open("rb") as source:
        while True:
            chunk = source.read(_REPAIR_CHUNK)
            data = carry + chunk
            cut = len(data) if not chunk else data.rfind(b">") + 1
            data, carry = data[:cut], data[cut:]
            repaired, found = _UNQUOTED_ATTRIBUTE.subn(rb'\1"\2"', data)
            copy.write(repaired)
            count += found
            if not chunk:
                break
    copy.seek(0)
    return copy, count


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
        parsed.close()
        repaired, count = _repaired_copy(path)
        with repaired:
            if count == 0:
                raise
            parsed = ParsedExport(threads=[])
            try:
                parse(_events(repaired, str(path), on_read, parsed.notes), parsed)
            except _NotWellFormed:
                parsed.close()
                raise error from None
            except BaseException:
                parsed.close()
                raise
        parsed.notes.append(f"the file is not well-formed XML; quoted {count} unquoted attribute value(s) "
                            "to read it")
        return parsed
    except BaseException:
        parsed.close()
        raise


def _text(element: Any) -> str:
    return (element.text or "").strip() if element is not None else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _is_wp(element: Any, name: str) -> bool:
    return isinstance(element.tag, str) and element.tag.startswith(WP_NAMESPACES) and _local(element.tag) == name


def _wp_child(element: Any, name: str) -> Any:
    for child in element:
        if _is_wp(child, name):
            return child
    return None


def _checked(moment: datetime, field_name: str, text: str) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not EARLIEST_COMMENT <= moment <= utcnow() + timedelta(days=2):
        raise ValueError(f"{field_name} {text!r} is out of range (expected a date between "
                         f"{EARLIEST_COMMENT.year} and now)")
    return moment


def _wp_date(gmt: str, local: str) -> datetime:
    """The comment's time: the GMT date, else the local one (WordPress leaves the GMT date at
    0000-00-00 for comments it imported itself)."""
    name, text = ("comment_date_gmt", gmt) if gmt and gmt != _NO_WP_DATE else ("comment_date", local)
    if not text or text == _NO_WP_DATE:
        raise ValueError("no date (<wp:comment_date_gmt> or <wp:comment_date>)")
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a date like 2020-05-01 12:00:00") from None
    return _checked(moment, name, text)


def _iso_date(text: str) -> datetime:
    if not text:
        raise ValueError("no date (<createdAt>)")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"createdAt {text!r} is not a date like 2020-05-01T12:00:00Z") from None
    return _checked(moment, "createdAt", text)


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


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _WxrItem:
    """The item being read: its comments are stored as they end, once the item's link is known
    (their keys hold it); comments before the <link> wait until then.

    The parser builds the tree ahead of the events it reports, so only elements whose end was
    reported are complete: those are the only ones read (and then removed)."""

    def __init__(self, path: Path, number: int, element: Any, parsed: ParsedExport) -> None:
        self.path = path
        self.number = number
        self.element = element
        self.parsed = parsed
        self.link: str | None = None
        self.waiting: list[Any] = []  # comments that ended before the <link>
        self.thread = ImportThread(key=f"item {number}", link="", title="")

    def where(self, comment_id: str = "") -> str:
        title = _text(self.element.find("title"))
        named = self.link or (repr(_short(html.unescape(title))) if title else "")
        comment = f", comment {comment_id}" if comment_id else ""
        return f"{self.path}: item {self.number}{f' ({named})' if named else ''}{comment}"

    def comment_ended(self, comment: Any) -> None:
        if self.link is None:
            self.waiting.append(comment)
        else:
            self._read_comment(comment)

    def link_ended(self, link: Any) -> None:
        if self.link is None:
            self.link = _canonical_or_raw(_text(link))
            self._read_waiting_comments()

    def finish(self) -> None:
        if self.link is None:
            self.link = ""
            self._read_waiting_comments()
        self.thread.link = self.link
        self.thread.title = html.unescape(_text(self.element.find("title")))
        self.thread.guid = _text(self.element.find("guid")) or None
        self.thread.comments = self.parsed.spool.count(self.thread.key)
        if self.thread.comments:
            if not self.link and not self.thread.guid:
                raise ImportFileError(f"{self.where()}: the item has comments but no <link> or <guid> "
                                      "to match it to a post")
            self.parsed.threads.append(self.thread)

    def _read_waiting_comments(self) -> None:
        for comment in self.waiting:
            self._read_comment(comment)
        self.waiting.clear()

    def _read_comment(self, element: Any) -> None:
        comment_id = _text(_wp_child(element, "comment_id"))
        try:
            comment = self._comment(element, comment_id)
        except ValueError as error:
            raise ImportFileError(f"{self.where(comment_id)}: {error}") from None
        if comment is None:
            self.parsed.skipped_comments += 1
        else:
            self.parsed.spool.add(self.thread.key, comment)
        self.element.remove(element)

    def _comment(self, element: Any, comment_id: str) -> ImportedComment | None:
        approved = _text(_wp_child(element, "comment_approved")).lower()
        kind = _text(_wp_child(element, "comment_type")).lower()
        if approved == "spam" or kind in ("pingback", "trackback"):
            return None
        link = self.link or ""
        author = _text(_wp_child(element, "comment_author")) or "Anonymous"
        raw_date = _text(_wp_child(element, "comment_date_gmt"))
        created = _wp_date(raw_date, _text(_wp_child(element, "comment_date")))
        content = _wp_child(element, "comment_content")
        if content is None:
            raise ValueError("no <wp:comment_content>")
        content_html = content.text or ""
        parent = _text(_wp_child(element, "comment_parent"))
        key = f"{link}#{comment_id}" if comment_id else _fallback_key(link, author, raw_date, content_html)
        markdown, plain = comment_markdown(content_html)
        return ImportedComment(
            origin="wxr", origin_key=key,
            parent_key=f"{link}#{parent}" if parent and parent != "0" else None,
            author_name=author[:200], content=markdown, clean_content=plain, created_at=created,
            deleted=approved == "trash", hidden=approved not in ("1", "approve", "approved", "trash"),
        )


def parse_wxr(path: Path, on_read: ProgressCallback | None = None) -> ParsedExport:
    """The comments of every item of a WordPress export (WXR 1.0 to 1.2)."""

    def parse(events: Iterator[tuple[str, Any]], parsed: ParsedExport) -> None:
        saw_channel = False
        open_elements: list[Any] = []
        items = 0
        item: _WxrItem | None = None
        for event, element in events:
            if event == "start":
                if not open_elements and element.tag != "rss":
                    raise ImportFileError(f"{path} is not a WordPress export (WXR): its root is "
                                          f"<{_local(element.tag)}>, expected <rss>")
                open_elements.append(element)
                saw_channel = saw_channel or element.tag == "channel"
                if element.tag == "item" and item is None:
                    items += 1
                    item = _WxrItem(path, items, element, parsed)
                continue
            open_elements.pop()
            if item is None:
                continue
            if element is item.element:
                item.finish()
                element.clear()
                if open_elements:
                    open_elements[-1].remove(element)
                item = None
            elif open_elements[-1] is item.element:
                if _is_wp(element, "comment"):
                    item.comment_ended(element)
                elif element.tag == "link":
                    item.link_ended(element)
        if not saw_channel:
            raise ImportFileError(f"{path} is not a WordPress export (WXR): no <channel>")

    return _parse_leniently(path, parse, on_read)


def parse_disqus(path: Path, on_read: ProgressCallback | None = None) -> ParsedExport:
    """The posts of a Disqus export grouped by thread (threads and posts may come in any order)."""

    def parse(events: Iterator[tuple[str, Any]], parsed: ParsedExport) -> None:
        threads: dict[str, ImportThread] = {}
        depth = 0
        root: Any = None
        posts = 0
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    if element.tag != DISQUS_NS + "disqus":
                        raise ImportFileError(f"{path} is not a Disqus export: its root is "
                                              f"<{_local(element.tag)}>, expected "
                                              '<disqus xmlns="http://disqus.com">')
                    root = element
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == DISQUS_NS + "thread":
                _read_disqus_thread(element, threads)
            elif element.tag == DISQUS_NS + "post":
                posts += 1
                _read_disqus_post(path, posts, element, parsed)
            element.clear()
            root.remove(element)
        for thread_key in parsed.spool.keys():
            thread = threads.get(thread_key)
            if thread is None:
                parsed.orphan_comments += parsed.spool.count(thread_key)
            else:
                thread.comments = parsed.spool.count(thread_key)
        parsed.threads = [thread for thread in threads.values() if thread.comments]

    return _parse_leniently(path, parse, on_read)


def _read_disqus_thread(element: Any, threads: dict[str, ImportThread]) -> None:
    thread_id = element.get(DSQ_ID, "")
    link = _text(element.find(DISQUS_NS + "link"))
    if thread_id and link:  # Disqus writes empty threads now and then: their posts count as orphans
        threads[thread_id] = ImportThread(key=thread_id, link=_canonical_or_raw(link),
                                          title=_text(element.find(DISQUS_NS + "title")),
                                          guid=_text(element.find(DISQUS_NS + "id")) or None)


def _read_disqus_post(path: Path, number: int, element: Any, parsed: ParsedExport) -> None:
    post_id = element.get(DSQ_ID, "")
    where = f"{path}: post {number}" + (f" (dsq:id={post_id})" if post_id else "")
    if _text(element.find(DISQUS_NS + "isSpam")).lower() == "true":
        parsed.skipped_comments += 1
        return
    try:
        thread = element.find(DISQUS_NS + "thread")
        thread_id = thread.get(DSQ_ID, "") if thread is not None else ""
        if not thread_id:
            raise ValueError("no <thread dsq:id=...> to say which thread it belongs to")
        message = element.find(DISQUS_NS + "message")
        if message is None:
            raise ValueError("no <message>")
        created_text = _text(element.find(DISQUS_NS + "createdAt"))
        created = _iso_date(created_text)
    except ValueError as error:
        raise ImportFileError(f"{where}: {error}") from None
    parent = element.find(DISQUS_NS + "parent")
    parent_id = parent.get(DSQ_ID, "") if parent is not None else ""
    author = element.find(DISQUS_NS + "author")
    name = _text(author.find(DISQUS_NS + "name")) if author is not None else ""
    username = _text(author.find(DISQUS_NS + "username")) if author is not None else ""
    content_html = message.text or ""
    deleted = _text(element.find(DISQUS_NS + "isDeleted")).lower() == "true"
    markdown, plain = comment_markdown(content_html)
    key = post_id or _fallback_key(thread_id, name, created_text, content_html)
    parsed.spool.add(thread_id, ImportedComment(
        origin="disqus", origin_key=key, parent_key=parent_id or None,
        author_name=(name or username or "Anonymous")[:200], content=markdown, clean_content=plain,
        created_at=created, deleted=deleted))


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
    post = await blog.post_by_url(database, thread.link) if thread.link else None
    if post is None and thread.guid:
        post = await blog.post_by_guid(database, thread.guid)
        if post is None and thread.guid.startswith(("http://", "https://")):
            post = await blog.post_by_url(database, _canonical_or_raw(thread.guid))
    swapped = _other_scheme(thread.link)
    if post is None and swapped is not None:
        post = await blog.post_by_url(database, swapped)
    return post


async def match_threads(database: Database, parsed: ParsedExport) -> tuple[list[tuple[int, ImportThread]],
                                                                            ImportReport]:
    """(post id, thread) of every thread a known post matches, and the report so far (threads
    no post matches are listed there)."""
    report = ImportReport(threads=len(parsed.threads), skipped_comments=parsed.skipped_comments,
                          orphan_comments=parsed.orphan_comments, notes=list(parsed.notes))
    matches: list[tuple[int, ImportThread]] = []
    for thread in parsed.threads:
        post = await _matching_post(database, thread)
        if post is None:
            report.skipped_threads.append(SkippedThread(link=thread.link, title=thread.title,
                                                        comments=thread.comments))
        else:
            matches.append((post.id, thread))
    report.matched = len(matches)
    return matches, report


def store_threads(spool: CommentSpool, matches: Sequence[tuple[int, ImportThread]],
                  on_stored: ProgressCallback | None = None) -> WriteOp[ImportOutcome]:
    """One write operation that stores the comments of every matched thread: one transaction, so
    an import that fails half-way adds nothing. ``on_stored`` gets the number of comments done (on
    the writer thread). Re-runnable, as write operations must be: it reads the spool afresh."""

    def op(connection: Connection) -> ImportOutcome:
        added = already_present = 0
        for post_id, thread in matches:
            outcome = blog.insert_imported_comments(connection, post_id, spool.comments(thread.key))
            added += outcome.added
            already_present += outcome.already_present
            if on_stored is not None:
                on_stored(added + already_present)
        return ImportOutcome(added=added, already_present=already_present)

    return op


async def import_threads(database: Database, parsed: ParsedExport,
                         on_stored: ProgressCallback | None = None) -> ImportReport:
    """Store every matched thread's comments in one transaction; unmatched threads are reported,
    not stored."""
    matches, report = await match_threads(database, parsed)
    return await store_matched(database, parsed, matches, report, on_stored)


async def store_matched(database: Database, parsed: ParsedExport, matches: Sequence[tuple[int, ImportThread]],
                        report: ImportReport, on_stored: ProgressCallback | None = None) -> ImportReport:
    """The second half of :func:`import_threads`: store, and complete ``report``."""
    outcome = await database.write(store_threads(parsed.spool, matches, on_stored))
    report.added = outcome.added
    report.already_present = outcome.already_present
    return report
