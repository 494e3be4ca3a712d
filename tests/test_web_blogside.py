"""The blog side beyond the widget over real HTTP on 127.0.0.1: JSON-LD on /p/, the HTML fragment,
the sitemap, the Atom comment feeds (parsed by feedparser) and reaction summaries on counts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import feedparser
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.storage.db import Database
from bot.web import DiscordStatus, create_app
from tests.conftest import BOTH_ENGINES
from tests.test_web_api import BLOG, POST_URL, SETTINGS, seed_discussion
from tests.web_support import BASE_TIME, GUILD, add_comment, add_post, add_reaction, next_id

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

SECRETS = ("HIDDEN TEXT", "OPTED OUT TEXT", "GONE TEXT", ">Shy<", '"Shy"', ">Mod<", '"Mod"', ">Dan<", '"Dan"')
Client = TestClient[object, object]


@pytest.fixture
async def client(database: Database) -> AsyncIterator[Client]:
    app = create_app(database, SETTINGS, lambda: DiscordStatus(connected=True, latency_ms=1.0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def json_ld_of(page: str) -> dict[str, Any]:
    scripts = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert len(scripts) == 1
    assert "</" not in scripts[0] and "<!--" not in scripts[0]
    document = json.loads(scripts[0])
    assert isinstance(document, dict)
    return document


def assert_schema_types(document: dict[str, Any]) -> None:
    """The schema.org types and properties we promise, with the value types schema.org expects."""
    assert document["@context"] == "https://schema.org"
    assert document["@type"] == "DiscussionForumPosting"
    assert isinstance(document["headline"], str) and document["headline"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", document["datePublished"])
    assert isinstance(document["commentCount"], int)
    statistic = document["interactionStatistic"]
    assert statistic == {"@type": "InteractionCounter", "interactionType": "https://schema.org/CommentAction",
                         "userInteractionCount": document["commentCount"]}
    ids = set()
    for comment in document["comment"]:
        assert set(comment) <= {"@type", "@id", "text", "author", "dateCreated", "dateModified", "url",
                                "parentItem"}
        assert comment["@type"] == "Comment"
        assert isinstance(comment["text"], str)
        assert comment["author"]["@type"] == "Person" and isinstance(comment["author"]["name"], str)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", comment["dateCreated"])
        if "url" in comment:
            assert comment["url"].startswith("https://")
        if "parentItem" in comment:
            assert comment["parentItem"]["@id"] in ids  # a parent comes before its replies
        ids.add(comment["@id"])


async def test_page_carries_json_ld_and_feed_link(client: Client, database: Database) -> None:
    ids = await seed_discussion(database)
    hostile = await add_comment(database, ids["post"], "</script><script>alert(1)</script> <!-- x",
                                author_name="</script>", thread_id=ids["thread"], minutes=9)
    response = await client.get(f"/p/{ids['post']}")
    assert response.status == 200
    page = await response.text()
    assert (f'<link rel="alternate" type="application/atom+xml" title="Comments: Hello &lt;World&gt; &amp; '
            f'friends" href="/feeds/p/{ids["post"]}.atom">') in page
    document = json_ld_of(page)
    assert_schema_types(document)
    assert document["headline"] == "Hello <World> & friends"
    assert document["url"] == POST_URL
    assert document["author"] == {"@type": "Person", "name": "Kirk"}
    assert document["datePublished"] == "2026-10-01T09:00:00Z"
    assert document["commentCount"] == 6
    by_id = {comment["@id"].split("#c")[1]: comment for comment in document["comment"]}
    assert set(by_id) == {str(ids[key]) for key in ("first", "reply", "reply2", "under_deleted", "under_hidden")} \
        | {str(hostile)}
    thread_url = f"https://discord.com/channels/{GUILD}/{ids['thread']}"
    first = by_id[str(ids["first"])]
    assert first["url"] == f"{thread_url}/{ids['first']}"
    assert first["text"].startswith("First! bold and @Ann")
    assert first["dateCreated"] == "2026-10-01T09:01:00Z" and first["dateModified"] == "2026-10-01T09:02:00Z"
    assert "parentItem" not in first
    assert by_id[str(ids["reply"])]["parentItem"] == {"@id": f"/p/{ids['post']}#c{ids['first']}"}
    assert by_id[str(ids["reply2"])]["parentItem"] == {"@id": f"/p/{ids['post']}#c{ids['reply']}"}
    # Parents that are not shown (deleted, hidden) are not pointed at.
    assert "parentItem" not in by_id[str(ids["under_deleted"])]
    assert "parentItem" not in by_id[str(ids["under_hidden"])]
    assert by_id[str(hostile)]["text"].startswith("</script><script>alert(1)</script>")
    assert by_id[str(hostile)]["author"]["name"] == "</script>"
    for secret in SECRETS:
        assert secret not in page


async def test_html_fragment_for_static_sites(client: Client, database: Database) -> None:
    ids = await seed_discussion(database)
    response = await client.get("/api/v1/discussion", params={"url": POST_URL, "format": "html"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    fragment = await response.text()
    assert fragment.startswith(f'<section class="conversation-engine" data-post-id="{ids["post"]}">')
    assert "<strong>bold</strong>" in fragment and "5 comments" in fragment
    assert f'id="c{ids["reply2"]}"' in fragment
    assert "<script" not in fragment.lower() and "style=" not in fragment.lower() and "<style" not in fragment
    for secret in SECRETS:
        assert secret not in fragment
    etag = response.headers["ETag"]
    again = await client.get("/api/v1/discussion", params={"url": POST_URL, "format": "html"},
                             headers={"If-None-Match": etag})
    assert again.status == 304
    json_answer = await client.get("/api/v1/discussion", params={"url": POST_URL})
    assert json_answer.headers["ETag"] != etag
    await add_comment(database, ids["post"], "newer", thread_id=ids["thread"], minutes=40)
    changed = await client.get("/api/v1/discussion", params={"url": POST_URL, "format": "html"},
                               headers={"If-None-Match": etag})
    assert changed.status == 200 and "newer" in await changed.text()
    bad = await client.get("/api/v1/discussion", params={"url": POST_URL, "format": "xml"})
    assert bad.status == 400 and "format" in (await bad.json())["error"]


async def test_sitemap_lists_public_discussions_with_last_comment_time(client: Client,
                                                                       database: Database) -> None:
    ids = await seed_discussion(database)
    private = await add_post(database, f"{BLOG}/private/", "Private", thread_id=next_id(), channel_id=999,
                             public=False)
    await add_comment(database, private, "secret", thread_id=None)
    only_hidden = await add_post(database, f"{BLOG}/hidden-only/", "Hidden only", thread_id=(t := next_id()))
    await add_comment(database, only_hidden, "HIDDEN TEXT", thread_id=t, hidden=True)
    no_comments = await add_post(database, f"{BLOG}/quiet/", "Quiet", thread_id=next_id())
    response = await client.get("/sitemap.xml")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(await response.read())
    namespace = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    urls = {node.findtext(f"{namespace}loc"): node.findtext(f"{namespace}lastmod")
            for node in root.iter(f"{namespace}url")}
    origin = f"http://127.0.0.1:{client.port}"
    # The last shown comment is "under_hidden" (minute 8); hidden and opted-out ones do not count.
    assert urls == {f"{origin}/p/{ids['post']}": "2026-10-01T09:08:00Z"}
    assert all(f"/p/{post}" not in str(urls) for post in (private, only_hidden, no_comments))
    etag = response.headers["ETag"]
    assert (await client.get("/sitemap.xml", headers={"If-None-Match": etag})).status == 304
    proxied = await client.get("/sitemap.xml", headers={"Host": "comments.example.com",
                                                        "X-Forwarded-Proto": "https"})
    assert f"<loc>https://comments.example.com/p/{ids['post']}</loc>" in await proxied.text()
    assert proxied.headers["ETag"] != etag  # another base URL, another answer
    assert (await client.get("/sitemap.xml", headers={"Host": "bad host<"})).status == 400
    await add_comment(database, no_comments, "now it has one", minutes=20)
    assert (await client.get("/sitemap.xml", headers={"If-None-Match": etag})).status == 200


async def test_post_feed_is_valid_atom_newest_first(client: Client, database: Database) -> None:
    ids = await seed_discussion(database)
    response = await client.get(f"/feeds/p/{ids['post']}.atom")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    body = await response.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Comments on Hello <World> & friends"
    entries = parsed.entries
    order = ["under_hidden", "under_deleted", "reply2", "reply", "first"]
    assert [entry.id.rsplit("#c", 1)[1] for entry in entries] == [str(ids[key]) for key in order]
    first = entries[-1]
    assert first.author == "Ann"
    assert "<strong>bold</strong>" in first.content[0].value
    thread_url = f"https://discord.com/channels/{GUILD}/{ids['thread']}"
    links = {link.rel: link.href for link in first.links}
    assert links == {"alternate": f"{thread_url}/{ids['first']}", "related": POST_URL}
    assert first.published == "2026-10-01T09:01:00Z" and first.updated == "2026-10-01T09:02:00Z"
    for secret in SECRETS:
        assert secret.encode() not in body
    # ETag and Last-Modified as the JSON API: 304s until the discussion changes.
    etag, last_modified = response.headers["ETag"], response.headers["Last-Modified"]
    assert last_modified == format_datetime(BASE_TIME + timedelta(minutes=8), usegmt=True)
    assert (await client.get(f"/feeds/p/{ids['post']}.atom", headers={"If-None-Match": etag})).status == 304
    assert (await client.get(f"/feeds/p/{ids['post']}.atom",
                             headers={"If-Modified-Since": last_modified})).status == 304
    await add_comment(database, ids["post"], "brand new", thread_id=ids["thread"], minutes=60)
    changed = await client.get(f"/feeds/p/{ids['post']}.atom", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert "brand new" in feedparser.parse(await changed.read()).entries[0].content[0].value
    assert (await client.get("/feeds/p/999999.atom")).status == 404


async def test_site_feed_holds_the_newest_fifty_of_all_posts(client: Client, database: Database) -> None:
    ids = await seed_discussion(database)
    other_thread = next_id()
    other = await add_post(database, f"{BLOG}/other/", "Other post", thread_id=other_thread)
    for minute in range(60):
        await add_comment(database, other, f"comment {minute} \x0b with a control character",
                          thread_id=other_thread, minutes=10 + minute, author_name=f"writer{minute}")
    private_thread = next_id()
    private = await add_post(database, f"{BLOG}/private/", "Private", thread_id=private_thread,
                             channel_id=998, public=False)
    await add_comment(database, private, "PRIVATE TEXT", thread_id=private_thread, minutes=500)
    response = await client.get("/feeds/comments.atom")
    assert response.status == 200
    body = await response.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) == 50
    assert parsed.entries[0].author == "writer59" and parsed.entries[49].author == "writer10"
    assert parsed.entries[0].title == "writer59 on Other post"
    assert {link.rel: link.href for link in parsed.entries[0].links}["related"] == f"{BLOG}/other/"
    assert b"PRIVATE TEXT" not in body
    for secret in SECRETS:
        assert secret.encode() not in body
    etag = response.headers["ETag"]
    assert (await client.get("/feeds/comments.atom", headers={"If-None-Match": etag})).status == 304
    await add_comment(database, ids["post"], "the newest", thread_id=ids["thread"], minutes=400)
    changed = await client.get("/feeds/comments.atom", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert feedparser.parse(await changed.read()).entries[0].author == "reader"


async def test_reaction_summary_leaves_out_hidden_and_deleted(client: Client, database: Database) -> None:
    ids = await seed_discussion(database)
    await add_reaction(database, ids["hidden"], "❤️", 50)
    await add_reaction(database, ids["optout"], "❤️", 50)
    await add_reaction(database, ids["reply"], "❤️", 2)
    await add_reaction(database, ids["reply2"], "🎉", 1)
    await add_reaction(database, ids["under_hidden"], "👍", 6)
    response = await client.get("/api/v1/counts", params={"url": POST_URL})
    summary = (await response.json())["reactions"][POST_URL]
    assert summary["total"] == 13
    assert [(item["emoji"], item["count"]) for item in summary["top"]] == [("👍", 9), ("❤️", 2), (":blobcat:", 1)]
    discussion = await (await client.get("/api/v1/discussion", params={"url": POST_URL})).json()
    assert discussion["reactions"] == summary


async def test_public_url_names_the_links_whatever_the_host_header(database: Database) -> None:
    ids = await seed_discussion(database)
    settings = replace(SETTINGS, public_url="https://comments.example.com/base")
    app = create_app(database, settings, lambda: DiscordStatus(connected=True, latency_ms=1.0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for host in ("127.0.0.1", "evil.example"):
            sitemap = await (await client.get("/sitemap.xml", headers={"Host": host})).text()
            assert f"<loc>https://comments.example.com/base/p/{ids['post']}</loc>" in sitemap
            assert "evil.example" not in sitemap
        feed = feedparser.parse(await (await client.get(f"/feeds/p/{ids['post']}.atom")).read())
        assert feed.feed.id == f"https://comments.example.com/base/p/{ids['post']}"
        assert all(entry.id.startswith("https://comments.example.com/base/p/") for entry in feed.entries)
