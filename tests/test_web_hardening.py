"""Issue 18, the web server's edges: slow and idle clients, big discussions, private channels, URLs,
and what errors and /healthz give away. Black-box over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from bot.config import Settings
from bot.storage import comments as store
from bot.storage.db import Database
from bot.web import DiscordStatus, ServerLimits, WebServer
from bot.web.cache import SharedCalls
from bot.web.server import admission_middleware
from tests.conftest import BOTH_ENGINES
from tests.web_support import (
    GUILD,
    add_attachment,
    add_comment,
    add_feed,
    add_post,
    add_reaction,
    next_id,
    opt_out,
    set_channel_public,
)

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

POST_URL = "https://blog.example.com/2026/10/big/"
SETTINGS = Settings(discord_token="", web_port=1, web_host="127.0.0.1")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


async def started(database: Database, settings: Settings = SETTINGS,
                  limits: ServerLimits | None = None) -> WebServer:
    server = WebServer(database, settings, lambda: DiscordStatus(connected=True, latency_ms=5.0), port=0,
                       limits=limits or ServerLimits())
    await server.start()
    return server


async def get(server: WebServer, path: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], bytes]:
    async with ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}{path}", **kwargs) as response:
            return response.status, CIMultiDict(response.headers), await response.read()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


# -- timeouts and the connection cap ----------------------------------------------------------


async def test_slow_headers_idle_keepalive_and_idle_piles_are_cut(database: Database) -> None:
    server = await started(database, limits=ServerLimits(header_timeout=0.5, keepalive_timeout=1.0,
                                                         max_connections=20))
    sockets: list[socket.socket] = []
    try:
        # A client that never finishes its headers is dropped after the header timeout.
        slow = socket.create_connection(("127.0.0.1", server.port))
        sockets.append(slow)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # A kept-alive connection that sent a request and went quiet is dropped after the idle timeout.
        kept = socket.create_connection(("127.0.0.1", server.port))
        sockets.append(kept)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.2)
        assert b"200 OK" in kept.recv(65536)
        await asyncio.sleep(0.7)
        assert closed_by_peer(slow)
        assert not closed_by_peer(kept)
        await asyncio.sleep(0.8)
        assert closed_by_peer(kept)

        # 60 idle connections against a cap of 20: /healthz still answers at once.
        pile = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        sockets.extend(pile)
        await asyncio.sleep(0.1)
        started_at = time.monotonic()
        status, _, _ = await get(server, "/healthz")
        assert status == 200 and time.monotonic() - started_at < 0.4
        assert sum(closed_by_peer(sock) for sock in pile) >= 40  # the longest idle made room
    finally:
        for sock in sockets:
            sock.close()
        await server.stop()


# -- big discussions: cache keyed by version, ETag = version, pages ---------------------------


async def seed_big(database: Database, tops: int, replies: int = 0) -> tuple[int, list[int]]:
    thread = next_id()
    post = await add_post(database, POST_URL, "Big", thread_id=thread)
    ids: list[int] = []

    def op(connection: sqlite3.Connection) -> None:
        for index in range(tops):
            message_id = next_id()
            ids.append(message_id)
            connection.execute(
                "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, post, thread, 600 + index % 7, f"user{index % 7}", f"comment {index}",
                 f"2026-10-01T10:{index // 60 % 60:02d}:{index % 60:02d}+00:00"))
            for reply in range(replies if index == 0 else 0):
                connection.execute(
                    "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, content, "
                    "created_at, reply_to) VALUES (?, ?, ?, 1, 'r', ?, ?, ?)",
                    (next_id(), post, thread, f"reply {reply}", f"2026-10-01T11:00:{reply % 60:02d}+00:00",
                     message_id))

    await database.write(op)
    return post, ids


async def test_etag_is_the_version_and_every_kind_of_write_invalidates(database: Database) -> None:
    post, ids = await seed_big(database, 5)
    server = await started(database)
    path = f"/api/v1/discussion?url={POST_URL}"
    try:
        status, headers, body = await get(server, path)
        assert status == 200, body
        etag = headers["ETag"]
        status, again, empty = await get(server, path, headers={"If-None-Match": etag})
        assert (status, empty, again["ETag"]) == (304, b"", etag)

        async def changed(what: str, check: Any) -> None:
            nonlocal etag
            status, headers, body = await get(server, path, headers={"If-None-Match": etag})
            assert status == 200, what
            assert headers["ETag"] != etag, what
            check(json.loads(body))
            etag = headers["ETag"]

        def edit(connection: sqlite3.Connection) -> None:
            connection.execute("UPDATE comments SET content = 'edited text', edited_at = ? WHERE message_id = ?",
                               (NOW.isoformat(), ids[0]))

        await database.write(edit)
        await changed("edit", lambda data: data["comments"][0]["edited"] and
                      "edited text" in data["comments"][0]["html"])
        await database.write(store.tombstone_comments([ids[1]], NOW))
        await changed("delete", lambda data: data["comments"][1]["deleted"])
        await database.write(store.add_reaction(ids[2], "👍"))
        await changed("reaction", lambda data: data["comments"][2]["reactions"][0]["count"] == 1)
        await database.write(store.set_hidden(ids[3], True))
        await changed("hide", lambda data: str(ids[3]) not in [c["id"] for c in data["comments"]])
        await database.write(store.set_opted_out(604, True, NOW))  # the author of comment 4
        await changed("opt-out", lambda data: str(ids[4]) not in [c["id"] for c in data["comments"]])
        await add_attachment(database, ids[0], "a.png", "https://cdn.example/a.png")
        await changed("attachment", lambda data: data["comments"][0]["attachments"])
    finally:
        await server.stop()


async def test_big_discussion_comes_in_pages(database: Database) -> None:
    _, ids = await seed_big(database, 450, replies=30)
    server = await started(database)
    try:
        seen: list[str] = []
        after = ""
        pages = 0
        while True:
            status, _, body = await get(server, f"/api/v1/discussion?url={POST_URL}{after}")
            assert status == 200
            data = json.loads(body)
            pages += 1
            assert data["comment_count"] == 480
            assert sum(1 + len(c["replies"]) for c in data["comments"]) <= 200
            seen.extend(c["id"] for c in data["comments"])
            if data["next_after"] is None:
                break
            after = f"&after={data['next_after']}"
        assert seen == [str(i) for i in ids] and pages == 3
        status, _, body = await get(server, f"/api/v1/discussion?url={POST_URL}&limit=10&after={ids[100]}")
        data = json.loads(body)
        assert [c["id"] for c in data["comments"]] == [str(i) for i in ids[101:111]]
        for query in ("&limit=0", "&limit=201", "&limit=x", "&after=abc", "&after=12345"):
            status, headers, _ = await get(server, f"/api/v1/discussion?url={POST_URL}{query}")
            assert status == 400, query
            assert headers["Cache-Control"] == "no-store"
    finally:
        await server.stop()


# -- only public discussions --------------------------------------------------------------------


async def test_private_and_unknown_channels_are_not_served(database: Database) -> None:
    public_post = await add_post(database, POST_URL, "Public", thread_id=next_id())
    await add_comment(database, public_post, "public words")
    secret_channel, unknown_channel = next_id(), next_id()
    secret_url, unknown_url = "https://blog.example.com/secret/", "https://blog.example.com/unknown/"
    secret = await add_post(database, secret_url, "Secret", thread_id=next_id(), guild_id=GUILD + 1,
                            channel_id=secret_channel, public=False)
    await add_comment(database, secret, "SECRET WORDS")
    unknown = await add_post(database, unknown_url, "Unknown", thread_id=next_id(), channel_id=unknown_channel,
                             public=None)
    await add_comment(database, unknown, "UNKNOWN WORDS")
    server = await started(database)
    try:
        for url in (secret_url, unknown_url):
            assert (await get(server, f"/api/v1/discussion?url={url}"))[0] == 404
        _, _, body = await get(server, f"/api/v1/counts?url={POST_URL}&url={secret_url}&url={unknown_url}")
        assert json.loads(body)["counts"] == {POST_URL: 1, secret_url: 0, unknown_url: 0}
        pages = [await get(server, f"/p/{post_id}") for post_id in range(1, 10)]
        assert [status for status, _, _ in pages].count(200) == 1
        assert not any(b"SECRET" in body or b"UNKNOWN" in body or b"Secret" in body for _, _, body in pages)
    finally:
        await server.stop()

    # The channel turns public (the bot saw the overwrites change): served at once, cache or not.
    def reveal(connection: sqlite3.Connection) -> None:
        set_channel_public(connection, GUILD + 1, secret_channel, True)

    server = await started(database)
    try:
        await database.write(reveal)
        status, _, body = await get(server, f"/api/v1/discussion?url={secret_url}")
        assert status == 200 and b"SECRET WORDS" in body
    finally:
        await server.stop()
    server = await started(database, replace(SETTINGS, web_include_private=True))
    try:
        status, _, body = await get(server, f"/api/v1/discussion?url={unknown_url}")
        assert status == 200 and b"UNKNOWN WORDS" in body
    finally:
        await server.stop()


# -- URLs, removed parents, opted-out mentions --------------------------------------------------


async def test_only_http_urls_and_nothing_of_removed_people(database: Database) -> None:
    thread = next_id()
    post = await add_post(database, POST_URL, "Links", thread_id=thread)
    hidden = await add_comment(database, post, "hidden one", hidden=True, author_id=700, minutes=1)
    shy = await add_comment(database, post, "shy one", author_id=701, author_name="Shy", minutes=2)
    await opt_out(database, 701)
    bad = ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://files.example/x", "vbscript:x", "//no-scheme"]
    first = await add_comment(database, post, "hi <@701> and <@702>", author_id=702, author_name="Ok",
                              avatar="javascript:alert(1)", reply_to=hidden, minutes=3,
                              extras=[{"kind": "embed", "name": n, "url": n} for n in bad]
                              + [{"kind": "embed", "name": "fine", "url": "https://fine.example/"}])
    second = await add_comment(database, post, "answering the shy one", author_id=703, reply_to=shy, minutes=4,
                               avatar="https://cdn.example/ok.png")
    for url in bad:
        await add_attachment(database, first, "f.txt", url, content_type="text/plain")
    await add_attachment(database, first, "ok.png", "http://cdn.example/ok.png")
    await add_reaction(database, first, "👍", 1)
    server = await started(database)
    try:
        _, _, body = await get(server, f"/api/v1/discussion?url={POST_URL}")
        data = json.loads(body)
        by_id = {c["id"]: c for c in data["comments"]}
        one, two = by_id[str(first)], by_id[str(second)]
        assert one["author"]["avatar_url"] is None
        assert two["author"]["avatar_url"] == "https://cdn.example/ok.png"
        assert [a["url"] for a in one["attachments"]] == ["http://cdn.example/ok.png"]
        assert [link["url"] for link in one["links"]] == ["https://fine.example/"]
        urls = re.findall(r'"(?:url|avatar_url)":"([^"]*)"', body.decode())
        assert urls and all(url.startswith(("https://", "http://")) for url in urls)
        for comment in (one, two):
            assert comment["reply_to"] is None and comment["reply_to_removed"] is True
        assert str(hidden) not in body.decode() and str(shy) not in body.decode()
        assert "@someone" in one["html"] and "Shy" not in body.decode()
        _, _, page = await get(server, f"/p/{post}")
        assert page.count(b"replying to a removed comment") == 2
        assert b"Shy" not in page and b"javascript:" not in page
    finally:
        await server.stop()


# -- what errors and /healthz give away ---------------------------------------------------------


async def test_health_errors_and_headers_say_little(database: Database) -> None:
    await add_feed(database, "https://secret-feed.example/rss?token=abc", failures=4)

    def fail(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE feeds SET last_error = 'HTTP 500 from https://secret-feed.example/rss'")

    await database.write(fail)
    post = await add_post(database, POST_URL, "Words", thread_id=next_id())
    await add_comment(database, post, "a" * 500)
    server = await started(database)
    try:
        status, headers, body = await get(server, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "degraded"
        assert b"secret-feed" not in body and b"HTTP 500" not in body
        for path in ("/healthz", f"/p/{post}", "/nothing", "/api/v1/nothing", "/p/999"):
            _, headers, _ = await get(server, path)
            assert not re.search(r"\d", headers.get("Server", "")), (path, headers.get("Server"))
            assert "aiohttp" not in headers.get("Server", "").lower()
        for path in ("/p/999", "/api/v1/discussion?url=https://blog.example.com/none/"):
            status, headers, _ = await get(server, path)
            assert status == 404 and headers["Cache-Control"] == "no-store"
        _, _, page = await get(server, f"/p/{post}")
        assert b"overflow-wrap: anywhere" in page

        for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
                        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(garbage)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            head, _, rest = answer.partition(b"\r\n\r\n")
            assert re.match(rb"HTTP/1\.[01] 400 ", head), answer[:100]
            assert b"Traceback" not in answer and b"GARBAGE" not in rest and b"aiohttp" not in answer
            assert rest.strip() == b"400 bad request"
    finally:
        await server.stop()


async def test_requests_enter_handlers_a_few_at_a_time_and_healthz_skips_the_line() -> None:
    """The admission middleware: with room for one request, a second waits for the first to finish,
    and /healthz is answered meanwhile."""
    inside = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        inside.set()
        await release.wait()
        return web.Response(text="slow")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[admission_middleware(1)])
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    app.router.add_get("/healthz", health)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:

        async def text(path: str) -> str:
            answer = await client.get(path)
            return await answer.text()

        slow_answer = asyncio.create_task(text("/slow"))
        await inside.wait()
        fast_answer = asyncio.create_task(text("/fast"))
        assert await text("/healthz") == "ok"  # while /slow holds the only place
        assert not fast_answer.done()
        release.set()
        assert await slow_answer == "slow"
        assert await fast_answer == "fast"


async def test_concurrent_lookups_of_one_key_share_one_run() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    runs: list[str] = []
    release = asyncio.Event()

    async def lookup(key: str) -> int:
        runs.append(key)
        await release.wait()
        if key == "bad":
            raise ValueError(key)
        return runs.count(key)

    first = asyncio.create_task(shared.run("a", lambda: lookup("a")))
    await asyncio.sleep(0)
    gone = asyncio.create_task(shared.run("a", lambda: lookup("a")))
    second = asyncio.create_task(shared.run("a", lambda: lookup("a")))
    other = asyncio.create_task(shared.run("b", lambda: lookup("b")))
    failing = [asyncio.create_task(shared.run("bad", lambda: lookup("bad"))) for _ in range(2)]
    await asyncio.sleep(0)
    gone.cancel()  # a caller that goes away does not cancel the run for the others
    release.set()
    assert await first == await second == 1 and await other == 1
    for task in failing:
        try:
            await task
        except ValueError:
            pass
        else:
            raise AssertionError("the run's error reaches every caller")
    assert sorted(runs) == ["a", "b", "bad"]
    assert await shared.run("a", lambda: lookup("a")) == 2  # a finished run is not reused
