"""Importing old comments: WordPress WXR and Disqus exports, our fixtures and the real corpus files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as SafeElementTree

from bot.exchange.importers import ImportFileError, import_threads, parse_disqus, parse_wxr
from bot.storage import blog
from bot.storage.db import Database
from bot.web.discussion import encode_discussion, load_discussion
from tests.conftest import BOTH_ENGINES
from tests.exchange_support import corpus_exports
from tests.web_support import add_post, next_id

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exchange"
CORPUS = corpus_exports()
FIRST = "https://blog.example.com/first-post/"


async def api_document(database: Database, post: blog.BlogPost) -> Any:
    """The whole discussion as the web API's first page shows it."""
    encoded = encode_discussion(await load_discussion(database, post, public_only=True), invite_url=None, page_limit=200)
    return json.loads(encoded.page(0, len(encoded.items)))



async def rows(database: Database, post_id: int) -> list[sqlite3.Row]:
    return await database.fetch_all(
        "SELECT * FROM comments WHERE post_id = ? ORDER BY created_at, message_id", (post_id,))


def corpus_file(name: str) -> Path:
    path = CORPUS / name if CORPUS is not None else Path(name)
    if not path.is_file():
        pytest.skip(f"corpus file {path} is absent")
    return path


async def test_wxr_import_matches_posts_nests_replies_and_is_idempotent(database: Database) -> None:
    first = await add_post(database, FIRST, "First post", thread_id=next_id())
    by_guid = await add_post(database, "https://blog.example.com/2021/moved/", "Found by guid",
                             guid="https://blog.example.com/?p=11")
    await add_post(database, "https://blog.example.com/quiet/", "No comments")

    parsed = parse_wxr(FIXTURES / "small.wxr.xml")
    report = await import_threads(database, parsed)
    assert (report.threads, report.matched, report.added, report.already_present) == (3, 2, 6, 0)
    assert report.skipped_comments == 2  # the spam and the pingback
    assert [(t.link, t.title, t.comments) for t in report.skipped_threads] == [
        ("https://blog.example.com/removed/", "Not on the blog any more", 2)]

    stored = await rows(database, first)
    by_author = {row["author_name"]: row for row in stored}
    assert [row["author_name"] for row in stored] == ["Alice", "Bob", "Carol", "Pending Pete", "Dave"]
    assert all(row["message_id"] < 0 and row["origin"] == "wxr" and row["thread_id"] is None for row in stored)
    assert len({row["message_id"] for row in stored}) == 5
    assert by_author["Alice"]["origin_key"] == FIRST + "#101"
    assert by_author["Alice"]["created_at"].startswith("2020-05-01T10:00:00")  # the GMT date
    assert by_author["Carol"]["created_at"].startswith("2020-05-01T14:00:00")  # local date when GMT is zero
    assert by_author["Bob"]["reply_to"] == by_author["Alice"]["message_id"]
    assert by_author["Carol"]["reply_to"] == by_author["Bob"]["message_id"]  # parent listed after the reply
    assert by_author["Pending Pete"]["hidden"] == 1
    assert by_author["Dave"]["deleted_at"] is not None and by_author["Dave"]["content"] == ""
    assert "Second line." in by_author["Alice"]["content"] and "**second**" in by_author["Alice"]["content"]
    assert "[a link](https://example.org/)" in by_author["Alice"]["content"]
    assert "@everyone" not in by_author["Carol"]["content"]  # neutralised on the way in
    assert "alert" not in by_author["Carol"]["content"]
    assert "Great post!" in by_author["Alice"]["clean_content"]
    guid_rows = await rows(database, by_guid)
    assert [row["author_name"] for row in guid_rows] == ["Erin"]

    # Parents get smaller |ids| than their replies, even when the file lists the reply first.
    assert abs(by_author["Alice"]["message_id"]) < abs(by_author["Bob"]["message_id"]) \
        < abs(by_author["Carol"]["message_id"])

    again = await import_threads(database, parse_wxr(FIXTURES / "small.wxr.xml"))
    assert (again.added, again.already_present) == (0, 6)
    assert len(await rows(database, first)) == 5

    # The widget's API shows them: nested, the pending one left out, the trashed one as a tombstone.
    post = await blog.post_by_url(database, FIRST)
    assert post is not None
    document = await api_document(database, post)
    tops = document["comments"]
    assert [c["author"]["name"] if c["author"] else None for c in tops] == ["Alice", None]
    assert [r["author"]["name"] for r in tops[0]["replies"]] == ["Bob", "Carol"]
    assert tops[0]["replies"][1]["reply_to_name"] == "Bob"
    assert tops[0]["origin"] == "wxr"
    assert "<strong>second</strong>" in tops[0]["html"]


async def test_disqus_import(database: Database) -> None:
    first = await add_post(database, FIRST, "First post")
    parsed = parse_disqus(FIXTURES / "small.disqus.xml")
    report = await import_threads(database, parsed)
    assert (report.threads, report.matched, report.added) == (2, 1, 3)
    assert report.skipped_comments == 1 and report.orphan_comments == 1
    assert [(t.link, t.comments) for t in report.skipped_threads] == [("https://blog.example.com/unknown/", 1)]
    stored = await rows(database, first)
    by_key = {row["origin_key"]: row for row in stored}
    assert set(by_key) == {"5001", "5002", "5003"}
    assert all(row["origin"] == "disqus" and row["message_id"] < 0 for row in stored)
    assert by_key["5003"]["reply_to"] == by_key["5001"]["message_id"]
    assert by_key["5002"]["deleted_at"] is not None
    assert by_key["5001"]["author_name"] == "Yann"
    assert "**two**" in by_key["5001"]["content"] and "&" in by_key["5001"]["clean_content"]
    assert (await import_threads(database, parse_disqus(FIXTURES / "small.disqus.xml"))).added == 0


async def test_imported_ids_stay_below_existing_ones(database: Database) -> None:
    first = await add_post(database, FIRST, "First post")
    await import_threads(database, parse_disqus(FIXTURES / "small.disqus.xml"))
    lowest = await database.fetch_value("SELECT min(message_id) FROM comments")
    await import_threads(database, parse_wxr(FIXTURES / "small.wxr.xml"))
    wxr_ids = [row["message_id"] for row in await rows(database, first) if row["origin"] == "wxr"]
    assert wxr_ids and max(wxr_ids) < lowest


def test_hostile_and_wrong_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="DTD or entities"):
        parse_wxr(FIXTURES / "entity-bomb.wxr.xml")
    with pytest.raises(ImportFileError, match="not a WordPress export"):
        parse_wxr(FIXTURES / "small.disqus.xml")
    with pytest.raises(ImportFileError, match="not a Disqus export"):
        parse_disqus(FIXTURES / "small.wxr.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<rss><channel><item></channel>")
    with pytest.raises(ImportFileError, match="not well-formed"):
        parse_wxr(broken)


def _independent_wxr_count(path: Path) -> list[int]:
    """Comments per item that the import should keep, counted with a plain tree walk."""
    tree = SafeElementTree.parse(path)
    counts: list[int] = []
    for item in tree.iter("item"):
        kept = 0
        for element in item:
            if not element.tag.endswith("}comment"):
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in element}
            if fields.get("comment_approved") == "spam" or fields.get("comment_type") in ("pingback", "trackback"):
                continue
            kept += 1
        if kept:
            counts.append(kept)
    return counts


@pytest.mark.parametrize("name", ["wordpress_theme-unit-test-data_wxr1.2.xml",
                                  "wordpress_wxr-comprehensive_small.xml", "wordpress_wxr1.0_isso.xml"])
async def test_real_wordpress_exports(database: Database, name: str) -> None:
    path = corpus_file(name)
    expected = _independent_wxr_count(path)
    with parse_wxr(path) as parsed:
        assert sorted(thread.comments for thread in parsed.threads) == sorted(expected)
        assert sum(thread.comments for thread in parsed.threads) == sum(expected)
        # Every thread but the last one is a known post; the last one must be reported as skipped.
        known, unknown = parsed.threads[:-1], parsed.threads[-1]
        for thread in known:
            await add_post(database, thread.link, thread.title or "untitled")
        parents_in_file = sum(1 for thread in known for comment in parsed.comments(thread) if comment.parent_key)
        report = await import_threads(database, parsed)
    assert report.matched == len(known)
    assert report.added == sum(thread.comments for thread in known)
    assert [skipped.link for skipped in report.skipped_threads] == [unknown.link]
    replies = await database.fetch_value("SELECT count(*) FROM comments WHERE reply_to IS NOT NULL")
    assert replies == parents_in_file
    with parse_wxr(path) as again:
        assert (await import_threads(database, again)).added == 0


@pytest.mark.parametrize("name", ["disqus_isso.xml", "disqus_radio-t_stray-backtick.xml"])
async def test_real_disqus_exports(database: Database, name: str, tmp_path: Path) -> None:
    path = corpus_file(name)
    if name.startswith("disqus_radio-t"):
        # Its sixth post is dated "2011-x09-30...": the file is refused, naming the post; fixed, it imports.
        with pytest.raises(ImportFileError) as refused:
            parse_disqus(path)
        assert str(refused.value) == (f"{path}: post 6 (dsq:id=x299986073): createdAt '2011-x09-30T22:48:43Z' "
                                      "is not a date like 2020-05-01T12:00:00Z")
        fixed = tmp_path / name
        fixed.write_bytes(path.read_bytes().replace(b"2011-x09-30", b"2011-09-30"))
        path = fixed
    with parse_disqus(path) as parsed:
        assert parsed.threads
        for thread in parsed.threads:
            await add_post(database, thread.link, thread.title or "untitled")
        report = await import_threads(database, parsed)
    assert report.matched == len(parsed.threads) and not report.skipped_threads
    total = sum(thread.comments for thread in parsed.threads)
    assert report.added == total
    assert await database.fetch_value("SELECT count(*) FROM comments WHERE origin = 'disqus'") == total
    if name.startswith("disqus_radio-t"):
        # A stray backtick before the declaration and an unquoted attribute value: read anyway, with notes.
        assert any("stray" in note for note in report.notes)
        assert any("unquoted" in note for note in report.notes)
    else:
        assert report.orphan_comments == 1  # the isso file's comment on thread 1337
    with parse_disqus(path) as again:
        assert (await import_threads(database, again)).added == 0


async def test_reply_cycles_in_a_file_do_not_hang(database: Database) -> None:
    from datetime import UTC, datetime

    from bot.storage.blog import ImportedComment, store_imported_comments

    post = await add_post(database, FIRST, "First post")
    moment = datetime(2020, 1, 1, tzinfo=UTC)
    looped = [ImportedComment(origin="wxr", origin_key=key, parent_key=parent, author_name=key, content=key,
                              clean_content=key, created_at=moment) for key, parent in (("a", "b"), ("b", "a"))]
    outcome = await database.write(store_imported_comments(post, looped))
    assert outcome.added == 2
    stored = {row["origin_key"]: row for row in await rows(database, post)}
    assert stored["a"]["reply_to"] == stored["b"]["message_id"]
    assert stored["b"]["reply_to"] == stored["a"]["message_id"]
    # The API still answers: the nesting walk stops at the loop.
    found = await blog.post_by_url(database, FIRST)
    assert found is not None
    document = await api_document(database, found)
    assert document["comment_count"] == 2
