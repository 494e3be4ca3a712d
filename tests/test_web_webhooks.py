"""Webhooks for blog owners, delivered to a local aiohttp receiver on 127.0.0.1: the events and
their signatures, nothing for hidden, opted-out or private comments, retries until the receiver
comes back (and /healthz saying so meanwhile), no loss across a restart or a SIGKILL, the SSRF guard."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ConfigError, Settings, load_settings
from bot.storage.db import Database, to_db_time
from bot.web import DiscordStatus, create_app
from bot.web.webhooks import WebhookDispatcher, WebhookTuning
from tests.conftest import BOTH_ENGINES
from tests.web_support import BASE_TIME, add_comment, add_post, next_id, opt_out

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

SECRET = "a-test-secret-of-32-characters!!"
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB"
FAST = WebhookTuning(poll_seconds=0.02, retry_first_seconds=0.05, retry_longest_seconds=0.2)
BLOG = "https://blog.example.com"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Receiver:
    """A blog owner's endpoint: records what arrives; ``mode`` is ok, fail or hang; with ``hang_after``
    set, it hangs once it has taken that many."""

    url: str = ""
    mode: str = "ok"
    hang_after: int | None = None
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        self.arrived.set()
        if self.hang_after is not None and len(self.received) >= self.hang_after:
            self.mode = "hang"
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "fail":
            return web.Response(status=503)
        self.received.append((dict(request.headers), body))
        return web.Response(text="ok")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook/secret-token", found.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{int(runner.addresses[0][1])}/hook/secret-token"
    yield found
    await runner.cleanup()


def settings_for(url: str, *, allow_private: bool = True) -> Settings:
    return Settings(discord_token="", webhook_urls=(url,), webhook_secret=SECRET,
                    allow_private_webhooks=allow_private)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def edit(database: Database, message_id: int, content: str) -> None:
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE comments SET content = ?, clean_content = ?, edited_at = ? WHERE message_id = ?",
                           (content, content, to_db_time(BASE_TIME), message_id))

    await database.write(op)


async def delete(database: Database, message_id: int) -> None:
    """As the bot's tombstone does: content and author erased with the deletion time."""
    def op(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE comments SET content = '', clean_content = '', author_name = '', author_id = NULL, "
                           "deleted_at = ? WHERE message_id = ?", (to_db_time(BASE_TIME), message_id))

    await database.write(op)


def verify(secret: str, body: bytes, header: str) -> bool:
    """What the README tells receivers to do."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


async def test_events_are_signed_and_only_for_what_the_blog_shows(database: Database, receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher(database, settings_for(receiver.url), tuning=FAST)
    receiver.mode = "fail"  # held back (and retried) until the edit below is written: no race with it
    await dispatcher.start()
    try:
        thread = next_id()
        post = await add_post(database, f"{BLOG}/a/", "A <post>", thread_id=thread)
        shown = await add_comment(database, post, "Hello **there** <@601>", author_id=601, author_name="Ann",
                                  thread_id=thread)
        await add_comment(database, post, "HIDDEN TEXT", author_id=602, author_name="Mod", thread_id=thread,
                          hidden=True)
        await opt_out(database, 603)
        await add_comment(database, post, "OPTED OUT TEXT", author_id=603, author_name="Shy", thread_id=thread)
        private_thread = next_id()
        private = await add_post(database, f"{BLOG}/private/", "Private", thread_id=private_thread, channel_id=42,
                                 public=False)
        await add_comment(database, private, "PRIVATE TEXT", author_id=604, thread_id=private_thread)
        await edit(database, shown, "Hello again")
        hidden_later = await add_comment(database, post, "to be hidden", author_id=605, author_name="Bo",
                                         thread_id=thread)
        await wait_until(lambda: receiver.attempts >= 2)
        receiver.mode = "ok"
        await wait_until(lambda: len(receiver.received) == 4)
        await database.write(lambda c: c.execute("UPDATE comments SET hidden = 1 WHERE message_id = ?",
                                                  (hidden_later,)))
        await delete(database, hidden_later)  # hidden: no delete event either
        await delete(database, shown)
        await wait_until(lambda: len(receiver.received) == 5)
        await asyncio.sleep(0.2)
    finally:
        await dispatcher.stop()
    events = receiver.events()
    assert [event["type"] for event in events] == ["post.thread_created", "comment.created", "comment.edited",
                                                   "comment.created", "comment.deleted"]
    for headers, body in receiver.received:
        assert verify(SECRET, body, headers["X-Conversation-Signature"])
        assert not verify("another secret", body, headers["X-Conversation-Signature"])
        assert headers["X-Conversation-Event"] == json.loads(body)["type"]
        assert headers["Content-Type"] == "application/json"
    assert len({event["id"] for event in events}) == 5
    assert events[0]["post"] == {"id": post, "url": f"{BLOG}/a/", "title": "A <post>"}
    assert events[0]["comment"] is None
    created = events[1]["comment"]
    assert created["id"] == str(shown) and created["author"] == "Ann"
    # Delivered after the edit: the current text, rendered like the blog's.
    assert created["text"] == "Hello again" and created["html"] == "<p>Hello again</p>"
    assert created["url"] == f"https://discord.com/channels/111111111111111111/{thread}/{shown}"
    assert created["created_at"] == "2026-10-01T09:00:00Z"
    assert events[2]["comment"]["text"] == "Hello again"
    assert events[4]["comment"] == {"id": str(shown)}  # a delete carries no content
    everything = b"".join(body for _, body in receiver.received)
    for secret in (b"HIDDEN TEXT", b"OPTED OUT TEXT", b"PRIVATE TEXT", b"Shy", b"Mod", b"Private"):
        assert secret not in everything


async def test_retries_until_the_receiver_is_back_and_healthz_says_so(
        database: Database, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.web.webhooks")
    settings = settings_for(receiver.url)
    dispatcher = WebhookDispatcher(database, settings, tuning=FAST)
    await dispatcher.start()
    app = create_app(database, settings, lambda: DiscordStatus(connected=True))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            receiver.mode = "fail"
            thread = next_id()
            post = await add_post(database, f"{BLOG}/b/", "B", thread_id=thread)
            await add_comment(database, post, "first", thread_id=thread)
            await wait_until(lambda: receiver.attempts >= 4)
            assert "keeps failing" in caplog.text and "127.0.0.1" in caplog.text
            assert "secret-token" not in caplog.text  # the log names the host only
            health: dict[str, Any] = {}

            async def failing() -> bool:
                nonlocal health
                health = await (await client.get("/healthz")).json()
                return bool(health["webhooks"]["failing"])

            # The webhook figures come from the last finished check: a probe or two later.
            for _ in range(250):
                if await failing():
                    break
                await asyncio.sleep(0.02)
            assert health["status"] == "degraded"
            assert health["webhooks"] == {"total": 1, "failing": 1}
            assert "1 webhook(s) failing" in health["problems"]
            assert "127.0.0.1" not in json.dumps(health)
            receiver.mode = "ok"
            await wait_until(lambda: len(receiver.received) == 2)
            assert [event["type"] for event in receiver.events()] == ["post.thread_created", "comment.created"]
            assert "delivering again" in caplog.text
            for _ in range(250):
                if not await failing():
                    break
                await asyncio.sleep(0.02)
            assert health["webhooks"] == {"total": 1, "failing": 0} and health["status"] == "ok"
    finally:
        await dispatcher.stop()


async def test_gives_up_an_event_after_the_retry_window(database: Database, receiver: Receiver,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    tuning = WebhookTuning(poll_seconds=0.02, retry_first_seconds=0.02, retry_longest_seconds=0.05,
                           give_up_after_seconds=0.3)
    dispatcher = WebhookDispatcher(database, settings_for(receiver.url), tuning=tuning)
    await dispatcher.start()
    try:
        receiver.mode = "fail"
        await add_post(database, f"{BLOG}/c/", "C", thread_id=next_id())
        await wait_until(lambda: "gave up event" in caplog.text)
        receiver.mode = "ok"
        thread = next_id()
        await add_post(database, f"{BLOG}/d/", "D", thread_id=thread)
        await wait_until(lambda: len(receiver.received) == 1)
        assert receiver.events()[0]["post"]["title"] == "D"  # the given-up event is not sent again
    finally:
        await dispatcher.stop()


async def test_no_event_is_lost_across_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "restart.db"
    database = await Database.open(path)
    dispatcher = WebhookDispatcher(database, settings_for(receiver.url), tuning=FAST)
    await dispatcher.start()
    receiver.mode = "hang"
    thread = next_id()
    post = await add_post(database, f"{BLOG}/e/", "E", thread_id=thread)
    comment = await add_comment(database, post, "kept across the restart", thread_id=thread)
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    # Mid-delivery: the bot stops and its database closes.
    await dispatcher.stop()
    await database.close()
    assert receiver.received == []

    receiver.mode = "ok"
    database = await Database.open(path)
    dispatcher = WebhookDispatcher(database, settings_for(receiver.url), tuning=FAST)
    await dispatcher.start()
    try:
        await wait_until(lambda: len(receiver.received) == 2)
    finally:
        await dispatcher.stop()
        await database.close()
    events = receiver.events()
    assert [event["type"] for event in events] == ["post.thread_created", "comment.created"]
    assert events[1]["comment"]["id"] == str(comment)


# The writing side of the bot in a process of its own: comments stored (their events go into the
# outbox in the same transaction) while the dispatcher delivers; the test kills it with SIGKILL.
KILLED_WRITER = """
import asyncio, sys
from pathlib import Path
from bot.config import Settings
from bot.storage.db import Database
from bot.web.webhooks import WebhookDispatcher, WebhookTuning
from tests.web_support import add_comment, add_post, next_id

async def main() -> None:
    database = await Database.open(Path(sys.argv[1]))
    settings = Settings(discord_token="", webhook_urls=(sys.argv[2],), webhook_secret=sys.argv[3],
                        allow_private_webhooks=True)
    dispatcher = WebhookDispatcher(database, settings, tuning=WebhookTuning(poll_seconds=0.02))
    await dispatcher.start()
    thread = next_id()
    post = await add_post(database, "https://blog.example.com/k/", "K", thread_id=thread)
    for number in range(20):
        await add_comment(database, post, f"comment {number}", thread_id=thread)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_no_event_is_lost_across_a_sigkill(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "killed.db"
    database = await Database.open(path)  # migrated here, so the child only writes
    await database.close()
    receiver.hang_after = 5  # the sixth delivery is in flight when the process dies
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED_WRITER, str(path), receiver.url,
                                                 SECRET, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
    try:
        await wait_until(lambda: receiver.mode == "hang", timeout=60.0)
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 30)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    before = {json.loads(body)["id"] for _, body in receiver.received}
    assert len(before) == 5

    receiver.mode, receiver.hang_after = "ok", None
    database = await Database.open(path)
    try:
        texts = {row[0] for row in await database.fetch_all("SELECT content FROM comments")}
        committed = 1 + len(texts)  # the thread's event and one per comment (delivered ones leave the outbox)
        dispatcher = WebhookDispatcher(database, settings_for(receiver.url), tuning=FAST)
        await dispatcher.start()
        try:
            await wait_until(lambda: len({json.loads(body)["id"] for _, body in receiver.received}) == committed)
            await asyncio.sleep(0.2)
        finally:
            await dispatcher.stop()
    finally:
        await database.close()
    assert committed > 6
    events = receiver.events()
    ids = [event["id"] for event in events]
    # Every committed event arrives, in order; only the one in flight at the kill may come twice
    # (receivers dedupe by X-Conversation-Delivery, as the README says).
    assert ids == sorted(ids) and len(ids) - len(set(ids)) <= 1
    assert sorted(set(ids)) == list(range(ids[0], ids[0] + committed))
    assert events[0]["type"] == "post.thread_created"
    assert {event["comment"]["text"] for event in events[1:]} == texts


async def test_private_addresses_are_refused_unless_allowed(database: Database, receiver: Receiver,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.web.webhooks")
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    for url in (receiver.url, by_name):
        dispatcher = WebhookDispatcher(database, settings_for(url, allow_private=False), tuning=FAST)
        await dispatcher.start()
        try:
            await add_post(database, f"{BLOG}/f/{next_id()}", "F", thread_id=next_id())
            await wait_until(lambda: caplog.text.count("refused") >= 1)
            await asyncio.sleep(0.1)
        finally:
            await dispatcher.stop()
        caplog.clear()
    assert receiver.attempts == 0


async def test_no_webhooks_means_no_outbox(database: Database) -> None:
    dispatcher = WebhookDispatcher(database, Settings(discord_token=""))
    await dispatcher.start()
    await add_post(database, f"{BLOG}/g/", "G", thread_id=next_id())
    assert await database.fetch_value("SELECT count(*) FROM webhook_outbox") == 0
    await dispatcher.stop()


def test_webhook_settings() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings({"DISCORD_TOKEN": TOKEN, "WEBHOOK_URLS": "https://hooks.example.com/a"})
    with pytest.raises(ConfigError, match="WEBHOOK_URLS"):
        load_settings({"DISCORD_TOKEN": TOKEN, "WEBHOOK_URLS": "ftp://x/y", "WEBHOOK_SECRET": SECRET})
    settings = load_settings({"DISCORD_TOKEN": TOKEN, "WEBHOOK_SECRET": SECRET, "ALLOW_PRIVATE_WEBHOOKS": "true",
                              "WEBHOOK_URLS": "https://a.example.com/x  https://b.example.com/y https://a.example.com/x"})
    assert settings.webhook_urls == ("https://a.example.com/x", "https://b.example.com/y")
    assert settings.allow_private_webhooks is True
    assert SECRET not in repr(settings)
    assert ("WEBHOOK_SECRET", "set") in settings.summary()
