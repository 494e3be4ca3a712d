"""Export (JSON and WordPress WXR), the export -> import round trip, and the CLI commands."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as SafeElementTree

from bot.__main__ import main
from bot.exchange.export import collect_export, export_json, export_wxr
from bot.exchange.importers import import_threads, parse_wxr
from bot.exchange.progress import Progress
from bot.render.html_to_discord import html_to_plain_text
from bot.storage import blog
from bot.storage.db import Database
from bot.web.discussion import ThreadedComment, load_discussion
from tests.conftest import BOTH_ENGINES
from tests.web_support import add_comment, add_post, add_reaction, next_id, opt_out

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "exports"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exchange"
WP = "{http://wordpress.org/export/1.2/}"
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
POSTS = [("https://blog.example.com/one/", "Post <one> & ]]> done"), ("https://blog.example.com/two/", "Two")]
COMMENT_FIELDS = ["comment_id", "comment_author", "comment_author_email", "comment_author_url",
                  "comment_author_IP", "comment_date", "comment_date_gmt", "comment_content",
                  "comment_approved", "comment_type", "comment_parent", "comment_user_id"]


async def seed(database: Database) -> dict[str, int]:
    one = await add_post(database, POSTS[0][0], POSTS[0][1], thread_id=next_id(), author="Kirk Jones")
    two = await add_post(database, POSTS[1][0], POSTS[1][1], thread_id=next_id())
    ids = {"one": one, "two": two}
    ids["a"] = await add_comment(database, one, "Hello **world** <@601> ||secret||", author_id=600,
                                 author_name="Ann", minutes=1, avatar="https://cdn.discordapp.com/a.png")
    ids["b"] = await add_comment(database, one, "Ann is right\n> quoted", author_id=601, author_name="Ben",
                                 minutes=2, reply_to=ids["a"])
    ids["c"] = await add_comment(database, one, "nested ]]> <b>not bold</b>", author_id=602, author_name="Cat",
                                 minutes=3, reply_to=ids["b"])
    ids["hidden"] = await add_comment(database, one, "moderated away", author_id=603, author_name="Hal",
                                      minutes=4, hidden=True)
    ids["shy"] = await add_comment(database, one, "PRIVATE WORDS", author_id=604, author_name="Shy", minutes=5)
    await opt_out(database, 604)
    ids["gone"] = await add_comment(database, one, "was here", author_id=605, author_name="Gus", minutes=6,
                                    deleted=True)
    ids["after_gone"] = await add_comment(database, one, "answering a deleted comment", author_id=606,
                                          author_name="Ivy", minutes=7, reply_to=ids["gone"])
    ids["d"] = await add_comment(database, two, "only comment on two\x01 with a control char", author_id=600,
                                 author_name="Ann", minutes=8)
    await add_reaction(database, ids["a"], "🎉", 2)
    return ids


async def exported(database: Database, url: str | None = None) -> list[Any]:
    posts = [await blog.post_by_url(database, url)] if url else await blog.all_posts(database)
    return await collect_export(database, [post for post in posts if post is not None])


async def test_json_export(database: Database) -> None:
    ids = await seed(database)
    document = json.loads(export_json(await exported(database), exported_at=NOW))
    assert document["format"] == "conversation-engine-export" and document["version"] == 1
    assert document["exported_at"] == "2026-11-02T08:00:00Z"
    assert [post["url"] for post in document["posts"]] == [url for url, _ in POSTS]
    one = document["posts"][0]
    assert one["title"] == POSTS[0][1] and one["thread"]["url"].startswith("https://discord.com/channels/")
    by_id = {comment["id"]: comment for comment in one["comments"]}
    assert str(ids["shy"]) not in by_id and "PRIVATE WORDS" not in json.dumps(document)
    assert by_id[str(ids["hidden"])]["hidden"] is True
    assert by_id[str(ids["gone"])]["deleted"] is True and by_id[str(ids["gone"])]["content"] == ""
    a = by_id[str(ids["a"])]
    assert a["content"] == "Hello **world** <@601> ||secret||"
    assert "<strong>world</strong>" in a["html"] and "@Ben" in a["html"]
    assert a["author"] == {"id": "600", "name": "Ann", "avatar_url": "https://cdn.discordapp.com/a.png",
                           "bot": False}
    assert a["reactions"] == [{"emoji": "🎉", "count": 2}]
    assert by_id[str(ids["c"])]["reply_to"] == str(ids["b"])
    single = json.loads(export_json(await exported(database, POSTS[1][0]), exported_at=NOW))
    assert [post["url"] for post in single["posts"]] == [POSTS[1][0]]


async def test_wxr_has_what_wordpress_needs(database: Database) -> None:
    ids = await seed(database)
    text = export_wxr(await exported(database), exported_at=NOW)
    root = SafeElementTree.fromstring(text.encode())
    channel = root.find("channel")
    assert root.tag == "rss" and root.get("version") == "2.0" and channel is not None
    assert channel.findtext(f"{WP}wxr_version") == "1.2"
    assert channel.findtext(f"{WP}base_site_url") == "https://blog.example.com"
    assert channel.find(f"{WP}author") is not None
    items = channel.findall("item")
    assert [item.findtext("link") for item in items] == [url for url, _ in POSTS]
    one = items[0]
    assert one.findtext("title") == POSTS[0][1]  # "]]>" in a title survives the CDATA split
    for name in ("post_id", "post_date", "post_date_gmt", "comment_status", "post_name", "status",
                 "post_type"):
        assert one.find(f"{WP}{name}") is not None, name
    assert one.findtext(f"{WP}post_type") == "post" and one.findtext(f"{WP}post_name") == "one"
    assert one.findtext("{http://purl.org/dc/elements/1.1/}creator") == "Kirk_Jones"
    comments = one.findall(f"{WP}comment")
    assert len(comments) == 6  # the opted-out one is not exported
    for comment in comments:
        assert [child.tag.removeprefix(WP) for child in comment][:len(COMMENT_FIELDS)] == COMMENT_FIELDS
        assert comment.findtext(f"{WP}comment_author_email") == ""
        assert int(comment.findtext(f"{WP}comment_id") or "0") > 0
    by_id = {int(c.findtext(f"{WP}comment_id") or "0"): c for c in comments}
    assert by_id[ids["c"]].findtext(f"{WP}comment_parent") == str(ids["b"])
    assert by_id[ids["a"]].findtext(f"{WP}comment_parent") == "0"
    assert by_id[ids["a"]].findtext(f"{WP}comment_date") == "2026-10-01 09:01:00"
    assert by_id[ids["a"]].findtext(f"{WP}comment_date_gmt") == "2026-10-01 09:01:00"
    assert by_id[ids["a"]].findtext(f"{WP}comment_approved") == "1"
    assert by_id[ids["hidden"]].findtext(f"{WP}comment_approved") == "0"
    assert by_id[ids["gone"]].findtext(f"{WP}comment_approved") == "trash"
    assert by_id[ids["c"]].findtext(f"{WP}comment_content") == "<p>nested ]]&gt; &lt;b&gt;not bold&lt;/b&gt;</p>"
    assert "\x01" not in text
    parents = {c.findtext(f"{WP}comment_parent") for c in comments} - {"0"}
    assert parents <= {str(i) for i in by_id}
    assert_parents_sort_first(root)


def assert_parents_sort_first(root: Any) -> None:
    """WordPress's importer walks comments in comment_id order and can only link a reply whose
    parent it has already inserted: every parent id must be smaller than its replies' ids."""
    for item in root.iter("item"):
        for comment in item.findall(f"{WP}comment"):
            parent = int(comment.findtext(f"{WP}comment_parent") or "0")
            assert parent < int(comment.findtext(f"{WP}comment_id") or "0")


async def test_wxr_of_imported_comments_lists_parents_first(database: Database) -> None:
    await add_post(database, "https://blog.example.com/first-post/", "First post")
    await import_threads(database, parse_wxr(FIXTURES / "small.wxr.xml"))
    root = SafeElementTree.fromstring(export_wxr(await exported(database), exported_at=NOW).encode())
    comments = root.findall(f"channel/item/{WP}comment")
    assert len(comments) == 5
    assert sum(1 for c in comments if c.findtext(f"{WP}comment_parent") != "0") == 2
    assert_parents_sort_first(root)


async def test_wxr_structure_matches_real_wordpress_exports(database: Database) -> None:
    real = CORPUS / "wordpress_wxr-comprehensive_small.xml"
    if not real.is_file():
        pytest.skip(f"corpus file {real} is absent")
    await seed(database)
    ours = SafeElementTree.fromstring(export_wxr(await exported(database), exported_at=NOW).encode())
    theirs = SafeElementTree.parse(real).getroot()

    def names(element: Any) -> set[str]:
        return {child.tag for child in element}

    optional = {"category", f"{WP}postmeta", f"{WP}commentmeta", f"{WP}category", f"{WP}tag"}
    assert ours.attrib == theirs.attrib
    assert names(theirs.find("channel")) - optional <= names(ours.find("channel"))
    their_item = theirs.find("channel/item")
    assert names(their_item) - optional <= names(ours.find("channel/item"))
    their_comment = their_item.find(f"{WP}comment")
    assert names(their_comment) - optional <= names(ours.find(f"channel/item/{WP}comment"))


def _shape(items: list[ThreadedComment]) -> list[tuple[Any, ...]]:
    return [(item.comment.author_name if not item.comment.deleted else None, item.comment.created_at,
             item.comment.deleted, html_to_plain_text(item.html), item.reply_to_name, _shape(item.replies))
            for item in items]


async def test_export_import_round_trip(database: Database, tmp_path: Path) -> None:
    await seed(database)
    wxr = tmp_path / "comments.xml"
    wxr.write_text(export_wxr(await exported(database), exported_at=NOW), encoding="utf-8")
    target = await Database.open(tmp_path / "target.db")
    try:
        for url, title in POSTS:
            await add_post(target, url, title, thread_id=next_id())
        report = await import_threads(target, parse_wxr(wxr))
        assert (report.matched, report.added, report.skipped_threads) == (2, 7, [])
        for url, _ in POSTS:
            before = await blog.post_by_url(database, url)
            after = await blog.post_by_url(target, url)
            assert before is not None and after is not None
            original = await load_discussion(database, before)
            imported = await load_discussion(target, after)
            assert _shape(list(imported.comments)) == _shape(list(original.comments))
            assert imported.comment_count == original.comment_count
        hidden = await target.fetch_all("SELECT author_name FROM comments WHERE hidden = 1")
        assert [row["author_name"] for row in hidden] == ["Hal"]
        assert (await import_threads(target, parse_wxr(wxr))).added == 0
    finally:
        await target.close()


def test_cli_export_and_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "source.db"
    target = tmp_path / "target.db"

    async def prepare() -> None:
        db = await Database.open(source)
        await seed(db)
        await db.close()
        other = await Database.open(target)
        await add_post(other, POSTS[0][0], POSTS[0][1])
        await other.close()

    asyncio.run(prepare())
    env_file = tmp_path / "empty.env"  # a named --env-file must exist
    env_file.write_text("", encoding="utf-8")
    monkeypatch.setenv("DATABASE_PATH", str(source))
    out = tmp_path / "out" / "comments.wxr"
    assert main(["--env-file", str(env_file), "export", "--format", "wxr", "-o", str(out)]) == 0
    assert "exported 2 post(s) and 7 comment(s) as WXR" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8" ?>')

    assert main(["--env-file", str(env_file), "export", "--format", "json", "--post",
                 POSTS[1][0] + "?utm_source=x"]) == 0
    captured = capsys.readouterr()
    assert [post["url"] for post in json.loads(captured.out)["posts"]] == [POSTS[1][0]]
    assert main(["--env-file", str(env_file), "export", "--post", "https://blog.example.com/nope/"]) == 1
    assert "no post with the link" in capsys.readouterr().err

    monkeypatch.setenv("DATABASE_PATH", str(target))
    assert main(["--env-file", str(env_file), "import", "--format", "wxr", str(out)]) == 0
    report = capsys.readouterr().out
    assert "2 thread(s) with comments, 1 matched a known post" in report
    assert "comments added: 6" in report
    assert "https://blog.example.com/two/ (Two): 1 comment(s)" in report
    assert "nothing was posted to Discord" in report
    assert main(["--env-file", str(env_file), "import", "--format", "wxr", str(out)]) == 0
    assert "comments added: 0; already present (not added again): 6" in capsys.readouterr().out
    assert main(["--env-file", str(env_file), "import", "--format", "disqus", str(out)]) == 2
    assert "not a Disqus export" in capsys.readouterr().err
    assert main(["--env-file", str(env_file), "import", "--format", "wxr", str(tmp_path / "missing.xml")]) == 2


def test_progress_bar() -> None:
    import io

    stream = io.StringIO()
    progress = Progress("reading", 2048, stream=stream, force=True, unit="B")
    progress.update(1024)
    progress.update(2048)
    progress.close()
    assert "reading [" in stream.getvalue() and "100% 2.0 KiB/2.0 KiB" in stream.getvalue()
    assert stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    silent = Progress("x", 10, stream=quiet)
    silent.update(5)
    silent.close()
    assert quiet.getvalue() == ""  # not a terminal: nothing drawn
