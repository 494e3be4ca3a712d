"""The comments API, discussion page, embed script and health check over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.storage.db import Database
from bot.web import DiscordStatus, WebServer, create_app
from tests.conftest import BOTH_ENGINES
from tests.web_support import (
    GUILD,
    HOSTILE_COMMENTS,
    add_attachment,
    add_comment,
    add_feed,
    add_post,
    add_reaction,
    next_id,
    opt_out,
)

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

BLOG = "https://blog.example.com"
POST_URL = f"{BLOG}/2026/10/hello-world/"
ALLOWED = "https://blog.example.com"
SETTINGS = Settings(discord_token="", web_allowed_origins=(ALLOWED,),
                    discord_invite_url="https://discord.gg/example")


@pytest.fixture
async def client(database: Database) -> AsyncIterator[TestClient[object, object]]:
    app = create_app(database, SETTINGS, lambda: DiscordStatus(connected=True, latency_ms=42.123))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def seed_discussion(database: Database) -> dict[str, int]:
    thread = next_id()
    post = await add_post(database, POST_URL, "Hello <World> & friends", thread_id=thread)
    ids: dict[str, int] = {"post": post, "thread": thread}
    ids["first"] = await add_comment(database, post, "First! **bold** and <@777>", author_name="Ann",
                                     author_id=777, avatar="https://cdn.discordapp.com/avatars/777/a.png",
                                     thread_id=thread, minutes=1, edited=True)
    ids["reply"] = await add_comment(database, post, "Reply to Ann", author_name="Ben", author_id=778,
                                     thread_id=thread, minutes=2, reply_to=ids["first"])
    ids["reply2"] = await add_comment(database, post, "Reply to Ben", author_name="Cat", author_id=779,
                                      thread_id=thread, minutes=3, reply_to=ids["reply"])
    ids["hidden"] = await add_comment(database, post, "HIDDEN TEXT", author_name="Mod", author_id=780,
                                      thread_id=thread, minutes=4, hidden=True)
    ids["optout"] = await add_comment(database, post, "OPTED OUT TEXT", author_name="Shy", author_id=781,
                                      thread_id=thread, minutes=5)
    await opt_out(database, 781)
    ids["deleted"] = await add_comment(database, post, "GONE TEXT", author_name="Dan", author_id=782,
                                       thread_id=thread, minutes=6, deleted=True)
    ids["under_deleted"] = await add_comment(database, post, "answer to a deleted one", author_name="Eve",
                                             author_id=783, thread_id=thread, minutes=7,
                                             reply_to=ids["deleted"])
    ids["under_hidden"] = await add_comment(database, post, "answer to a hidden one", author_name="Fay",
                                            author_id=784, thread_id=thread, minutes=8,
                                            reply_to=ids["hidden"])
    await add_reaction(database, ids["first"], "👍", 3)
    await add_reaction(database, ids["first"], "blobcat:123456789012345678", 1)
    await add_attachment(database, ids["first"], "cat.png", "https://cdn.discordapp.com/attachments/1/2/cat.png")
    return ids


async def test_discussion_shape_nesting_and_filtering(client: TestClient[object, object],
                                                      database: Database) -> None:
    ids = await seed_discussion(database)
    response = await client.get("/api/v1/discussion", params={"url": POST_URL})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r"public, max-age=\d{1,3}", response.headers["Cache-Control"])
    data = await response.json()
    assert data["post"] == {"id": ids["post"], "url": POST_URL, "title": "Hello <World> & friends",
                            "author": "Kirk", "published_at": "2026-10-01T09:00:00Z",
                            "page": f"/p/{ids['post']}"}
    assert data["thread"]["url"] == f"https://discord.com/channels/{GUILD}/{ids['thread']}"
    assert data["invite_url"] == "https://discord.gg/example"
    assert data["comment_count"] == 5  # first, reply, reply2, under_deleted, under_hidden

    tops = data["comments"]
    assert [c["id"] for c in tops] == [str(ids["first"]), str(ids["deleted"]), str(ids["under_hidden"])]
    first, deleted, orphan = tops
    # Replies nested one level, in time order; the reply to a reply names whom it answers.
    assert [r["id"] for r in first["replies"]] == [str(ids["reply"]), str(ids["reply2"])]
    assert first["replies"][0]["reply_to_name"] is None
    assert first["replies"][1]["reply_to_name"] == "Ben"
    assert first["replies"][1]["reply_to"] == str(ids["reply"])
    assert "replies" not in first["replies"][0]

    assert first["author"] == {"name": "Ann", "avatar_url": "https://cdn.discordapp.com/avatars/777/a.png",
                               "bot": False}
    assert first["edited"] is True and first["edited_at"] == "2026-10-01T09:02:00Z"
    assert first["created_at"] == "2026-10-01T09:01:00Z"
    assert "<strong>bold</strong>" in first["html"]
    assert "@Ann" in first["html"]  # the mention resolved from the authors we know
    assert first["reactions"] == [
        {"emoji": "👍", "name": "👍", "custom": False, "count": 3},
        {"emoji": ":blobcat:", "name": "blobcat", "custom": True, "count": 1},
    ]
    assert first["attachments"] == [{"filename": "cat.png",
                                     "url": "https://cdn.discordapp.com/attachments/1/2/cat.png",
                                     "size": 1234, "content_type": "image/png", "is_image": True}]
    # The tombstone keeps its place and its reply, with nothing of its content or author.
    assert deleted["deleted"] is True and deleted["author"] is None and deleted["html"] == ""
    assert [r["id"] for r in deleted["replies"]] == [str(ids["under_deleted"])]
    # A reply to a hidden comment stands alone; the hidden one and the opted-out one are absent.
    assert orphan["replies"] == []
    body = await response.text()
    for secret in ("HIDDEN TEXT", "OPTED OUT TEXT", "GONE TEXT", "Shy", "Mod", "Dan"):
        assert secret not in body


async def test_unknown_post_is_404_json_and_bad_input_is_400(client: TestClient[object, object],
                                                             database: Database) -> None:
    await seed_discussion(database)
    response = await client.get("/api/v1/discussion", params={"url": f"{BLOG}/nope/"})
    assert response.status == 404
    assert (await response.json())["error"]
    assert response.headers["Cache-Control"] == "no-store"
    for params, fragment in [({}, "required"), ({"url": "ftp://x/y"}, "http"), ({"url": "not a url"}, "http"),
                             ({"url": "https://x/" + "a" * 3000}, "longer"), ({"url": "  "}, "empty")]:
        response = await client.get("/api/v1/discussion", params=params)
        assert response.status == 400, params
        assert fragment in (await response.json())["error"]
    response = await client.get("/api/v1/discussion?url=a&url=b")
    assert response.status == 400
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404 and "error" in await response.json()


async def test_url_is_canonicalised_like_the_feed_code(client: TestClient[object, object],
                                                       database: Database) -> None:
    await seed_discussion(database)
    messy = "HTTPS://Blog.Example.com:443/2026/10/hello-world/?utm_source=rss#comments"
    response = await client.get("/api/v1/discussion", params={"url": messy})
    assert response.status == 200
    assert (await response.json())["post"]["url"] == POST_URL


async def test_etag_and_304(client: TestClient[object, object], database: Database) -> None:
    ids = await seed_discussion(database)
    first = await client.get("/api/v1/discussion", params={"url": POST_URL})
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"a\d+\.\d+\.[0-9a-f]{8}"', etag)  # the post's version, not a hash of the body
    again = await client.get("/api/v1/discussion", params={"url": POST_URL}, headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag
    weak = await client.get("/api/v1/discussion", params={"url": POST_URL},
                            headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status == 304
    await add_comment(database, ids["post"], "a new comment", minutes=30)
    changed = await client.get("/api/v1/discussion", params={"url": POST_URL}, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag


async def test_cors_only_for_allowed_origins(client: TestClient[object, object], database: Database) -> None:
    await seed_discussion(database)
    allowed = await client.get("/api/v1/discussion", params={"url": POST_URL}, headers={"Origin": ALLOWED})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "ETag" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Origin" in allowed.headers["Vary"]
    refused = await client.get("/api/v1/discussion", params={"url": POST_URL},
                               headers={"Origin": "https://evil.example"})
    assert refused.status == 200
    assert "Access-Control-Allow-Origin" not in refused.headers
    preflight = await client.options("/api/v1/counts", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    refused_preflight = await client.options("/api/v1/counts", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert refused_preflight.status == 403
    assert "Access-Control-Allow-Origin" not in refused_preflight.headers
    # Errors carry the CORS headers too, so the widget can read the message.
    missing = await client.get("/api/v1/discussion", params={"url": f"{BLOG}/x"}, headers={"Origin": ALLOWED})
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_counts(client: TestClient[object, object], database: Database) -> None:
    ids = await seed_discussion(database)
    other = await add_post(database, f"{BLOG}/other/", "Other")
    await add_comment(database, other, "one")
    await add_comment(database, other, "deleted", deleted=True)
    unknown = f"{BLOG}/unknown/"
    response = await client.get("/api/v1/counts", params=[("url", POST_URL), ("url", f"{BLOG}/other/?utm_x=1"),
                                                          ("url", unknown)])
    assert response.status == 200
    data = await response.json()
    assert data == {
        "counts": {POST_URL: 5, f"{BLOG}/other/?utm_x=1": 1, unknown: 0},
        "reactions": {
            POST_URL: {"total": 4, "top": [
                {"emoji": "👍", "name": "👍", "custom": False, "count": 3, "image_url": None},
                {"emoji": ":blobcat:", "name": "blobcat", "custom": True, "count": 1,
                 "image_url": "https://cdn.discordapp.com/emojis/123456789012345678.png"}]},
            f"{BLOG}/other/?utm_x=1": {"total": 0, "top": []}},
        "unknown": [unknown]}
    assert response.headers["ETag"]
    assert ids
    assert (await client.get("/api/v1/counts")).status == 400
    assert (await client.get("/api/v1/counts", params={"url": "javascript:alert(1)"})).status == 400
    too_many = [("url", f"{BLOG}/{n}") for n in range(51)]
    response = await client.get("/api/v1/counts", params=too_many)
    assert response.status == 400 and "50" in (await response.json())["error"]


async def test_hostile_comments_come_back_sanitised(client: TestClient[object, object],
                                                    database: Database) -> None:
    post = await add_post(database, POST_URL, "Hostile", thread_id=next_id())
    for minute, text in enumerate(HOSTILE_COMMENTS):
        await add_comment(database, post, text, minutes=minute, author_name="<b onmouseover=alert(1)>x</b>")
    data = await (await client.get("/api/v1/discussion", params={"url": POST_URL})).json()
    htmls = [comment["html"] for comment in data["comments"]]
    joined = "\n".join(htmls)
    assert not re.search(r"<(script|img|svg|iframe)\b", joined, re.IGNORECASE)
    assert not re.search(r"<[a-z][^>]*\bhref=[\"']?\s*javascript", joined, re.IGNORECASE)
    assert not re.search(r"<[^>]+\son\w+=", joined)
    assert "&lt;script&gt;" in htmls[0]  # shown as text
    assert "@unknown-user" in htmls[-1] and "@unknown-role" in htmls[-1]
    assert data["comments"][0]["author"]["name"] == "<b onmouseover=alert(1)>x</b>"  # JSON, not markup


async def test_discussion_page_escapes_everything_and_sends_csp(client: TestClient[object, object],
                                                                database: Database) -> None:
    ids = await seed_discussion(database)
    for minute, text in enumerate(HOSTILE_COMMENTS):
        await add_comment(database, ids["post"], text, minutes=40 + minute,
                          author_name="<script>alert('name')</script>")
    response = await client.get(f"/p/{ids['post']}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    page = await response.text()
    assert "<title>Discussion: Hello &lt;World&gt; &amp; friends</title>" in page
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in page
    # The one script element is the JSON-LD data block (not run; its JSON holds no "<").
    page, data_blocks = re.subn(r'<script type="application/ld\+json">[^<]*</script>', "", page)
    assert data_blocks == 1
    assert not re.search(r"<(script|img src=x|svg|iframe)\b", page, re.IGNORECASE)
    assert not re.search(r"<[a-z][^>]*\bhref=[\"']?\s*javascript", page, re.IGNORECASE)
    assert "Join the discussion on Discord" in page
    assert f"https://discord.com/channels/{GUILD}/{ids['thread']}" in page
    assert "HIDDEN TEXT" not in page and "OPTED OUT TEXT" not in page and "deleted comment" in page
    assert (await client.get("/p/999999")).status == 404
    assert (await client.get("/p/abc")).status == 404


async def test_embed_script_is_served(client: TestClient[object, object]) -> None:
    response = await client.get("/embed.js")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert "max-age" in response.headers["Cache-Control"]
    script = await response.text()
    assert "IntersectionObserver" in script and "attachShadow" in script
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


async def test_healthz(database: Database) -> None:
    status = {"connected": True}
    app = create_app(database, SETTINGS, lambda: DiscordStatus(connected=status["connected"], latency_ms=12.34))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {
            "status": "ok", "problems": [], "discord": {"connected": True, "latency_ms": 12.3},
            "database": {"ok": True}, "feeds": {"total": 0, "failing": 0, "disabled": 0, "paused": 0}}
        await add_feed(database, "https://a.example/feed", failures=3)
        await add_feed(database, "https://b.example/feed", disabled="410 Gone")
        await add_feed(database, "https://c.example/feed", paused=True)
        await add_feed(database, "https://d.example/feed")
        # Feed figures come from the last finished check (one at a time): they show a probe or two later.
        deadline = asyncio.get_running_loop().time() + 5
        data = await (await client.get("/healthz")).json()
        while data["feeds"]["total"] != 4 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            data = await (await client.get("/healthz")).json()
        assert data["status"] == "degraded"
        assert data["feeds"] == {"total": 4, "failing": 1, "disabled": 1, "paused": 1}
        assert data["problems"] == ["1 feed(s) failing", "1 feed(s) disabled"]
        status["connected"] = False
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "down"


async def test_web_server_starts_on_configured_host(database: Database) -> None:
    settings = replace(SETTINGS, web_port=1, web_host="127.0.0.1")
    server = WebServer(database, settings, port=0)
    await server.start()
    try:
        from aiohttp import ClientSession

        url = f"http://127.0.0.1:{server.port}/healthz"
        async with ClientSession() as session:
            async with session.get(url) as response:
                # No bot bound yet: the gateway state is unknown, which alone is not "down".
                assert response.status == 200
                data = await response.json()
                assert data["discord"] == {"connected": None, "latency_ms": None}
                assert data["database"] == {"ok": True}
            server.discord_status.bind(lambda: DiscordStatus(connected=False, latency_ms=float("inf")))
            async with session.get(url) as response:
                assert response.status == 503
                assert (await response.json())["discord"] == {"connected": False, "latency_ms": None}
    finally:
        await server.stop()


async def test_run_bot_refuses_a_busy_web_port_before_connecting(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from bot.__main__ import EXIT_CONFIG, run_bot

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        settings = Settings(discord_token="x" * 40, database_path=tmp_path / "bot.db", web_port=port,
                            web_host="127.0.0.1")
        assert await run_bot(settings) == EXIT_CONFIG
    finally:
        busy.close()
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port} (WEB_HOST/WEB_PORT)" in error
