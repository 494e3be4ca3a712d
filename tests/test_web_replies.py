"""Replying from the blog (issue 21) end to end: our bot and its web server against the emulator's
OAuth2, webhooks and member lookup."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.app import ConversationBot
from bot.storage import Database
from bot.storage import comments as store
from bot.storage.db import utcnow
from bot.web import WebServer
from cogs._reply_discord import DiscordReplies
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_log, bot_settings, running_bot
from tests.discussions_support import add_post_thread, eventually
from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World
from tests.web_support import free_port

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

BLOG = "https://blog.example"
OTHER_BLOG = "https://other.example"
FAST = replace(TEST_TUNING, reply_interval_seconds=0.0)


@dataclass
class Site:
    emu: FakeDiscord
    bot: ConversationBot
    base: str
    http: aiohttp.ClientSession
    thread: Any
    post_url: str

    async def sign_in(self, user: Any, origin: str = BLOG) -> str:
        """The popup's whole journey: our login, Discord's authorize page, our callback."""
        self.emu.approve_oauth(user)
        login = await self.http.get(f"{self.base}/auth/discord/login", params={"origin": origin},
                                    allow_redirects=False)
        assert login.status == 302, await login.text()
        authorize = await self.http.get(login.headers["Location"], allow_redirects=False)
        assert authorize.status == 302
        callback = await self.http.get(authorize.headers["Location"], allow_redirects=False)
        page = await callback.text()
        assert callback.status == 200, page
        found = re.search(r'postMessage\((\{.*?\}), ("[^"]+")\)', page)
        assert found is not None, page
        assert json.loads(found.group(2)) == origin  # handed to the blog's origin only
        return str(json.loads(found.group(1))["token"])

    async def post(self, token: str, content: str, *, reply_to: str | None = None, origin: str = BLOG,
                   url: str | None = None) -> aiohttp.ClientResponse:
        body: dict[str, Any] = {"url": url or self.post_url, "content": content}
        if reply_to is not None:
            body["reply_to"] = reply_to
        return await self.http.post(f"{self.base}/api/v1/comments", json=body,
                                    headers={"Authorization": f"Bearer {token}", "Origin": origin})


@contextlib.asynccontextmanager
async def site(emu: FakeDiscord, world: World, database: Database, tmp_path: Path,
               **overrides: Any) -> AsyncIterator[Site]:
    starter = emu.send_message(world.announcements, emu.bot, "New post: Replies")
    thread = emu.create_thread(world.announcements, "Replies", emu.bot, message=starter)
    await add_post_thread(database, thread.id, title="Replies", guild_id=world.guild.id,
                          parent_channel_id=world.announcements.id, starter_message_id=starter.id)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    emu.redirect_uris.append(f"{base}/auth/discord/callback")
    values: dict[str, Any] = {"tuning": FAST, "web_port": port, "web_allowed_origins": (BLOG, OTHER_BLOG),
                              "discord_client_secret": emu.client_secret, "public_url": base,
                              "web_include_private": True, "discord_invite_url": "https://discord.gg/blog"}
    values.update(overrides)
    settings = bot_settings(emu, tmp_path, **values)
    async with running_bot(emu, settings) as bot:
        await bot_log(bot).wait_for("catch-up of", timeout=8)
        server = WebServer(bot.database, settings)
        server.watch_bot(bot)
        server.attach_poster(DiscordReplies(bot))
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Site(emu, bot, base, http, thread, f"https://blog.example/{thread.id}")
        finally:
            await server.stop()


async def test_sign_in_post_reply_and_delete(emulator: FakeDiscord, world: World, database: Database,
                                             tmp_path: Path) -> None:
    world.alice.avatar = "abc123"
    async with site(emulator, world, database, tmp_path) as s:
        token = await s.sign_in(world.alice)
        authorize = emulator.authorize_requests[-1]
        assert authorize["scope"] == "identify" and authorize["response_type"] == "code"
        assert authorize["client_id"] == str(emulator.application_id)
        # Discord's token was used once and forgotten: only our opaque session is kept, hashed.
        stored = await database.fetch_all("SELECT token_hash, user_id FROM web_sessions")
        assert [row["user_id"] for row in stored] == [world.alice.id] and stored[0]["token_hash"] != token

        answer = await s.post(token, f"  Great post <@{world.bob.id}> @everyone <@&{world.readers.id}>  ")
        assert answer.status == 201, await answer.text()
        comment = await answer.json()
        assert comment["author"]["name"] == "Alice" and comment["author"]["bot"] is False
        assert comment["author"]["avatar_url"] == f"https://cdn.discordapp.com/avatars/{world.alice.id}/abc123.png"
        message = emulator.message(int(comment["id"]))
        assert message.channel_id == s.thread.id and message.webhook_id is not None
        assert message.webhook_author is not None and message.webhook_author["username"] == "Alice"
        assert message.content.startswith("Great post")
        # Mentions in the text ping nobody.
        assert message.mentions == [] and message.mention_roles == [] and not message.mention_everyone
        assert message.allowed_mentions == {"parse": []}
        stored_comment = await eventually(lambda: store.get_comment(database, message.id), what="the comment")
        assert isinstance(stored_comment, store.StoredComment)
        assert stored_comment.author_id == world.alice.id and not stored_comment.is_bot

        # Bob answers Alice's comment: the webhook is reused, the reply links the message it answers.
        bob_token = await s.sign_in(world.bob)
        reply = await s.post(bob_token, "Thanks Alice", reply_to=comment["id"])
        assert reply.status == 201, await reply.text()
        reply_doc = await reply.json()
        reply_message = emulator.message(int(reply_doc["id"]))
        assert f"/{s.thread.id}/{message.id}" in reply_message.content
        assert len(emulator.webhooks) == 1
        discussion = await (await s.http.get(f"{s.base}/api/v1/discussion", params={"url": s.post_url})).json()
        top = next(c for c in discussion["comments"] if c["id"] == comment["id"])
        assert [r["id"] for r in top["replies"]] == [reply_doc["id"]]
        assert top["replies"][0]["author"]["name"] == "Bob"

        # A name Discord refuses for webhooks: posted under a neutral one, shown with the reader's own.
        fan = emulator.create_user("fan", global_name="Discord Fan")
        emulator.add_member(world.guild, fan, roles=[world.readers])
        fan_comment = await (await s.post(await s.sign_in(fan), "me too")).json()
        assert fan_comment["author"]["name"] == "Discord Fan"
        fan_author = emulator.message(int(fan_comment["id"])).webhook_author
        assert fan_author is not None and fan_author["username"] == "Blog reader"

        # Only the author deletes their blog comment; that deletes the Discord message.
        headers = {"Authorization": f"Bearer {bob_token}", "Origin": BLOG}
        refused = await s.http.delete(f"{s.base}/api/v1/comments/{comment['id']}", headers=headers)
        assert refused.status == 403 and (await refused.json())["code"] == "not_yours"
        headers["Authorization"] = f"Bearer {token}"
        deleted = await s.http.delete(f"{s.base}/api/v1/comments/{comment['id']}", headers=headers)
        assert deleted.status == 204
        assert emulator.message(message.id).deleted

        async def tombstoned() -> bool:
            found = await store.get_comment(database, message.id)
            return found is not None and found.deleted_at is not None

        await eventually(tombstoned, what="the comment's tombstone")

        # Sign out revokes the session.
        out = await s.http.post(f"{s.base}/auth/logout", headers={"Authorization": f"Bearer {token}",
                                                                  "Origin": BLOG})
        assert out.status == 204
        again = await s.post(token, "still here?")
        assert again.status == 401 and (await again.json())["code"] == "signed_out"


async def test_forged_replayed_state_and_foreign_origin(emulator: FakeDiscord, world: World, database: Database,
                                                        tmp_path: Path) -> None:
    async with site(emulator, world, database, tmp_path) as s:
        unknown = await s.http.get(f"{s.base}/auth/discord/login", params={"origin": "https://evil.example"},
                                   allow_redirects=False)
        assert unknown.status == 400
        emulator.approve_oauth(world.alice)
        login = await s.http.get(f"{s.base}/auth/discord/login", params={"origin": BLOG}, allow_redirects=False)
        state = parse_qs(urlsplit(login.headers["Location"]).query)["state"][0]
        forged = state[:-4] + ("0000" if not state.endswith("0000") else "1111")
        callback = f"{s.base}/auth/discord/callback"
        bad = await s.http.get(callback, params={"state": forged, "code": "x"})
        assert bad.status == 400 and "token" not in await bad.text()
        authorize = await s.http.get(login.headers["Location"], allow_redirects=False)
        redirect = authorize.headers["Location"]
        first = await s.http.get(redirect)
        assert first.status == 200 and '"token"' in await first.text()
        replayed = await s.http.get(redirect)
        assert replayed.status == 400 and '"token"' not in await replayed.text()

        token = await s.sign_in(world.alice, origin=OTHER_BLOG)
        elsewhere = await s.post(token, "hello", origin=BLOG)
        assert elsewhere.status == 403 and (await elsewhere.json())["code"] == "wrong_origin"
        cookie_only = await s.http.post(f"{s.base}/api/v1/comments", json={"url": s.post_url, "content": "x"},
                                        headers={"Origin": BLOG, "Cookie": f"session={token}"})
        assert cookie_only.status == 401
        assert not [m for m in emulator.messages(s.thread) if m.webhook_id]


async def test_refusals(emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    stranger = emulator.create_user("stranger")
    muted = emulator.create_user("muted")
    emulator.add_member(world.guild, muted, roles=[world.readers])
    shy = emulator.create_user("shy")
    emulator.add_member(world.guild, shy)
    async with site(emulator, world, database, tmp_path) as s:
        token = await s.sign_in(stranger)
        answer = await s.post(token, "let me in")
        body = await answer.json()
        assert answer.status == 403 and body["code"] == "not_member" and "https://discord.gg/blog" in body["error"]

        emulator.time_out(world.guild, muted, "2099-01-01T00:00:00+00:00")
        token = await s.sign_in(muted)
        answer = await s.post(token, "shh")
        assert answer.status == 403 and (await answer.json())["code"] == "timed_out"

        await database.write(store.set_opted_out(shy.id, True, utcnow()))
        token = await s.sign_in(shy)
        answer = await s.post(token, "hi")
        assert answer.status == 403 and (await answer.json())["code"] == "opted_out"

        emulator.deny(world.announcements, Perm.SEND_MESSAGES_IN_THREADS, target=world.readers, role=True)
        token = await s.sign_in(world.bob)
        answer = await s.post(token, "hi")
        assert answer.status == 403 and (await answer.json())["code"] == "no_permission"

        for content in ("   ", "x" * 2001):
            answer = await s.post(token, content)
            assert answer.status == 400 and (await answer.json())["code"] == "length"
        assert not [m for m in emulator.messages(s.thread) if m.webhook_id]


async def test_rate_limits(emulator: FakeDiscord, world: World, database: Database, tmp_path: Path) -> None:
    tuning = replace(TEST_TUNING, replies_per_hour=3, replies_per_address_per_minute=4)
    async with site(emulator, world, database, tmp_path, tuning=tuning) as s:
        token = await s.sign_in(world.alice)
        assert (await s.post(token, "one")).status == 201
        too_soon = await s.post(token, "two")
        assert too_soon.status == 429 and 1 <= int(too_soon.headers["Retry-After"]) <= 10
        assert (await too_soon.json())["code"] == "rate_limited"

    fast = replace(TEST_TUNING, reply_interval_seconds=0.0, replies_per_hour=3, replies_per_address_per_minute=4)
    emulator.redirect_uris.clear()
    async with site(emulator, world, database, tmp_path, tuning=fast) as s:
        alice, bob = await s.sign_in(world.alice), await s.sign_in(world.bob)
        for n in range(3):
            assert (await s.post(alice, f"alice {n}")).status == 201
        hourly = await s.post(alice, "alice 4")
        assert hourly.status == 429 and int(hourly.headers["Retry-After"]) > 3000
        assert (await s.post(bob, "bob 1")).status == 201
        per_address = await s.post(bob, "bob 2")  # the fifth from this address within the minute
        assert per_address.status == 429 and int(per_address.headers["Retry-After"]) <= 60


async def test_replying_off_without_settings(emulator: FakeDiscord, world: World, database: Database,
                                             tmp_path: Path) -> None:
    async with site(emulator, world, database, tmp_path, discord_client_secret=None) as s:
        login = await s.http.get(f"{s.base}/auth/discord/login", params={"origin": BLOG}, allow_redirects=False)
        assert login.status == 404
        answer = await s.post("anything", "hello")
        assert answer.status == 404


async def test_archived_thread_reopens_and_locked_refuses(emulator: FakeDiscord, world: World, database: Database,
                                                          tmp_path: Path) -> None:
    async with site(emulator, world, database, tmp_path) as s:
        token = await s.sign_in(world.alice)
        emulator.archive_thread(s.thread)
        answer = await s.post(token, "waking this up")
        assert answer.status == 201, await answer.text()
        assert emulator.channel(s.thread).metadata.archived is False  # type: ignore[union-attr]
        assert emulator.webhook_avatars[int((await answer.json())["id"])] is None  # Alice has no avatar

        emulator.lock_thread(s.thread)
        await eventually(lambda: _thread_locked(database, s.thread.id), what="the lock reaching the database")
        locked = await s.post(token, "anyone?")
        assert locked.status == 403 and (await locked.json())["code"] == "locked"


async def _thread_locked(database: Database, thread_id: int) -> bool:
    thread = await store.get_thread(database, thread_id)
    return thread is not None and thread.locked


def test_settings_for_replying() -> None:

    from bot.config import ConfigError, load_settings

    token = {"DISCORD_TOKEN": "x" * 30}
    secret = "s3cr3t-client-secret-value"
    settings = load_settings({**token, "DISCORD_CLIENT_SECRET": secret, "PUBLIC_URL": "https://c.example.com/"})
    assert settings.replying_enabled and settings.public_url == "https://c.example.com"
    assert secret not in repr(settings) and secret not in str(settings.summary())
    assert not load_settings({**token, "DISCORD_CLIENT_SECRET": secret}).replying_enabled
    assert not load_settings({**token, "PUBLIC_URL": "https://c.example.com"}).replying_enabled
    with pytest.raises(ConfigError, match="^DISCORD_CLIENT_SECRET: ") as error:
        load_settings({**token, "DISCORD_CLIENT_SECRET": "has spaces in it, no"})
    assert "has spaces" not in str(error.value)
    with pytest.raises(ConfigError, match="^PUBLIC_URL: .*ftp://c.example.com"):
        load_settings({**token, "PUBLIC_URL": "ftp://c.example.com"})


async def test_blog_comments_follow_opt_out_and_hiding(emulator: FakeDiscord, world: World, database: Database,
                                                       tmp_path: Path) -> None:
    async with site(emulator, world, database, tmp_path) as s:
        alice, bob = await s.sign_in(world.alice), await s.sign_in(world.bob)
        mine = await (await s.post(alice, "from the blog")).json()
        theirs = await (await s.post(bob, "also from the blog")).json()

        done = await emulator.invoke_message_command("Hide from blog", int(theirs["id"]), world.owner).answer_text()
        assert done.startswith("Hidden")
        text = await emulator.invoke("privacy optout", world.alice, s.thread).answer_text()
        assert "1 saved message was erased" in text  # the blog comment counts as Alice's own
        erased = await store.get_comment(database, int(mine["id"]))
        assert erased is not None and erased.deleted_at is not None and erased.content == ""

        discussion = await (await s.http.get(f"{s.base}/api/v1/discussion", params={"url": s.post_url})).json()
        shown = json.dumps(discussion)
        assert "from the blog" not in shown
        refused = await s.post(alice, "again")
        assert refused.status == 403 and (await refused.json())["code"] == "opted_out"
