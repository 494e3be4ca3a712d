"""The lookup commands end to end: our ConversationBot against the Discord emulator."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import GENERIC_FAILURE
from tests.conftest import BOTH_ENGINES, TEST_TUNING, bot_settings, running_bot, settled
from tests.fakediscord.emulator import FakeDiscord
from tests.fakediscord.harness import World
from tests.fakediscord.models import Message
from tests.lookup_support import BASE_TIME, add_comment, add_post, add_reaction, opt_out

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

THREAD = 700000000000000001


def assert_mentions_nobody(message: Message) -> None:
    assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
    assert not message.mentions and not message.mention_roles and not message.mention_everyone


def buttons(message: Message) -> dict[str, dict[str, Any]]:
    found = {}
    for row in message.components:
        for component in row.get("components", []):
            if component.get("type") == 2:
                found[component["label"]] = component
    return found


async def answer(emulator: FakeDiscord, command: str, user: Any, channel: Any,
                 options: dict[str, Any] | None = None) -> Message:
    handle = emulator.invoke(command, user, channel, options)
    kind = await handle.response()
    message = await handle.wait_original() if kind in (4, 5) else (await handle.wait_followups())[0]
    if kind == 5:  # deferred: the follow-up carries the answer
        message = (await handle.wait_followups())[0]
    assert message.content != GENERIC_FAILURE
    return message


async def test_post_latest_lists_newest_posts_and_mentions_nobody(emulator: FakeDiscord, world: World,
                                                                  tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        guild = world.guild.id
        empty = await answer(emulator, "post latest", world.alice, world.announcements)
        assert empty.content.startswith("No posts yet")
        first = await add_post(bot.database, "Hello @everyone <@&1> <@123>", guild_id=guild, thread_id=THREAD,
                               url="https://blog.example.com/hello")
        await add_post(bot.database, "Second post", guild_id=guild, published=BASE_TIME + timedelta(days=1))
        await add_post(bot.database, "Elsewhere", guild_id=guild + 1)
        await add_comment(bot.database, first, "nice", thread_id=THREAD)
        message = await answer(emulator, "post latest", world.alice, world.announcements, {"count": 5})
        text = message.content
        assert text.index("Second post") < text.index("Hello")
        assert "Elsewhere" not in text
        assert "1 comment" in text and f"https://discord.com/channels/{guild}/{THREAD}" in text
        assert "<https://blog.example.com/hello>" in text
        assert "@everyone" not in text and "<@&1>" not in text and "<@123>" not in text
        assert not message.ephemeral
        assert_mentions_nobody(message)


async def test_post_latest_long_titles_fit(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        for index in range(10):
            await add_post(bot.database, f"{index} " + "very long title " * 30, guild_id=world.guild.id,
                           thread_id=THREAD + index, url=f"https://blog.example.com/{'x' * 300}/{index}")
        message = await answer(emulator, "post latest", world.alice, world.announcements, {"count": 10})
        assert len(message.content) <= 2000
        assert "more not shown" in message.content or message.content.count("\n") == 10


async def test_post_search_results_snippets_and_links(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        guild = world.guild.id
        post = await add_post(bot.database, "Sourdough basics", guild_id=guild, thread_id=THREAD,
                              summary="Flour and water", url="https://blog.example.com/bread")
        comment = await add_comment(bot.database, post, "my *sourdough* starter says @here", thread_id=THREAD)
        message = await answer(emulator, "post search", world.bob, world.announcements, {"query": "sourdough"})
        text = message.content
        assert "__Posts__" in text and "__Comments__" in text
        assert f"https://discord.com/channels/{guild}/{THREAD}/{comment}" in text
        assert "**sourdough**" in text and "@here" not in text
        assert_mentions_nobody(message)
        nothing = await answer(emulator, "post search", world.bob, world.announcements, {"query": "croissant"})
        assert nothing.content.startswith("Nothing found for `croissant`")


@pytest.mark.parametrize(("query", "expected"), [
    ('"unbalanced', "unmatched quote was ignored"),
    ("-", "nothing to search for"),
    ("*", "nothing to search for"),
    ("AND OR NOT", "Nothing found"),
    ("NEAR(", "Nothing found"),
    ("title:", "Nothing found"),
    ("-sourdough", "leaves things out"),
])
async def test_malformed_search_queries_are_answered(emulator: FakeDiscord, world: World, tmp_path: Path,
                                                     query: str, expected: str) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        await add_post(bot.database, "Sourdough basics", guild_id=world.guild.id)
        message = await answer(emulator, "post search", world.alice, world.announcements, {"query": query})
        assert expected in message.content
        assert_mentions_nobody(message)


async def test_search_long_results_fit(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        for index in range(8):
            post = await add_post(bot.database, "lorem " * 60 + str(index), guild_id=world.guild.id,
                                  thread_id=THREAD + index, summary="lorem ipsum " * 100)
            for _ in range(3):
                await add_comment(bot.database, post, "lorem ipsum dolor " * 200, thread_id=THREAD + index)
        message = await answer(emulator, "post search", world.alice, world.announcements, {"query": "lorem"})
        assert len(message.content) <= 2000 and "**lorem**" in message.content


async def test_post_show_with_autocomplete(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        guild = world.guild.id
        for index in range(30):
            await add_post(bot.database, f"Garden diary {index} " + "words " * 40, guild_id=guild,
                           published=BASE_TIME + timedelta(hours=index))
        post = await add_post(bot.database, "Kitchen notes", guild_id=guild, thread_id=THREAD, author="Ann",
                              published=BASE_TIME + timedelta(days=5))
        one = await add_comment(bot.database, post, "tasty", author_id=5, author_name="Bea", thread_id=THREAD)
        await add_comment(bot.database, post, "hmm", author_id=6, author_name="@everyone", thread_id=THREAD)
        await add_reaction(bot.database, one, "🔥", 4)

        choices = await emulator.autocomplete("post show", world.alice, world.announcements, "post",
                                              "gard di").wait_choices()
        assert len(choices) == 25
        assert all(len(choice["name"]) <= 100 and len(str(choice["value"])) <= 100 for choice in choices)
        assert all(choice["name"].startswith("Garden diary") for choice in choices)
        kitchen = await emulator.autocomplete("post show", world.alice, world.announcements, "post",
                                              "kit").wait_choices()
        assert kitchen == [{"name": "Kitchen notes", "value": str(post)}]
        empty = await emulator.autocomplete("post show", world.alice, world.announcements, "post", "").wait_choices()
        assert empty[0]["name"] == "Kitchen notes" and len(empty) == 25

        message = await answer(emulator, "post show", world.alice, world.announcements, {"post": str(post)})
        text = message.content
        assert "**Kitchen notes**" in text and "by Ann" in text and "**Comments:** 2" in text
        assert "2 participants" in text and "🔥 4" in text and "@everyone" not in text
        assert_mentions_nobody(message)
        by_title = await answer(emulator, "post show", world.alice, world.announcements, {"post": "kitchen notes"})
        assert "**Kitchen notes**" in by_title.content
        missing = await answer(emulator, "post show", world.alice, world.announcements, {"post": "no such thing"})
        assert missing.content.startswith("No post matches that") and missing.ephemeral
        # Numbers no SQLite integer can hold (or not ASCII digits) are simply not found.
        for reference in ("99999999999999999999999", "9223372036854775808", "²", "١٢"):
            huge = await answer(emulator, "post show", world.alice, world.announcements, {"post": reference})
            assert huge.content.startswith("No post matches that") and huge.ephemeral, reference
        pages = await answer(emulator, "comments", world.alice, world.announcements,
                             {"post": "99999999999999999999999"})
        assert pages.content.startswith("No post matches that")


async def test_comments_pages_only_for_the_caller(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        post = await add_post(bot.database, "Busy", guild_id=world.guild.id, thread_id=THREAD)
        for index in range(20):
            await add_comment(bot.database, post, f"comment number {index}", author_name=f"user{index}",
                              thread_id=THREAD)
        handle = emulator.invoke("comments", world.alice, world.announcements, {"post": str(post)})
        message = await handle.wait_original()
        assert "page 1/3" in message.content and "comment number 0" in message.content
        assert not message.ephemeral
        assert_mentions_nobody(message)
        controls = buttons(message)
        assert controls["Previous"].get("disabled") and not controls["Next"].get("disabled")

        # Someone else is refused, privately, and the page does not move.
        refused = emulator.click(message, controls["Next"]["custom_id"], world.bob)
        assert "Only the person who ran" in await refused.answer_text()
        assert refused.followups == [] or refused.followups[0].ephemeral
        assert "page 1/3" in emulator.message(message.id).content

        turned = emulator.click(message, controls["Next"]["custom_id"], world.alice)
        assert await turned.response() == 7
        await emulator.wait_until(lambda: "page 2/3" in emulator.message(message.id).content)
        assert "comment number 8" in emulator.message(message.id).content
        emulator.click(message, controls["Next"]["custom_id"], world.alice)
        await emulator.wait_until(lambda: "page 3/3" in emulator.message(message.id).content)
        assert buttons(emulator.message(message.id))["Next"].get("disabled")


async def test_comments_private_start_page_and_expiry(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    settings = bot_settings(emulator, tmp_path, tuning=replace(TEST_TUNING, pager_lifetime_seconds=0.5))
    async with running_bot(emulator, settings) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        post = await add_post(bot.database, "Busy", guild_id=world.guild.id, thread_id=THREAD)
        for index in range(12):
            await add_comment(bot.database, post, f"comment number {index}", thread_id=THREAD)
        handle = emulator.invoke("comments", world.alice, world.announcements,
                                 {"post": str(post), "page": 2, "private": True})
        message = await handle.wait_original()
        assert message.ephemeral and "page 2/2" in message.content and "comment number 8" in message.content
        # After the lifetime the buttons are disabled, so nobody can page any more.
        await emulator.wait_until(
            lambda: all(b.get("disabled") for b in buttons(emulator.message(message.id)).values()), timeout=5)
        with pytest.raises(ValueError, match="disabled"):
            emulator.click(message, buttons(emulator.message(message.id))["Previous"]["custom_id"], world.alice)


async def test_comments_empty_and_single_page(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        post = await add_post(bot.database, "Quiet", guild_id=world.guild.id, thread_id=THREAD)
        message = await answer(emulator, "comments", world.alice, world.announcements, {"post": str(post)})
        assert "No comments yet" in message.content and message.components == []
        await add_comment(bot.database, post, "only one <@&5>", thread_id=THREAD)
        message = await answer(emulator, "comments", world.alice, world.announcements, {"post": str(post)})
        assert "only one" in message.content and "<@&5>" not in message.content and message.components == []
        assert_mentions_nobody(message)


async def test_stats(emulator: FakeDiscord, world: World, tmp_path: Path) -> None:
    async with running_bot(emulator, bot_settings(emulator, tmp_path)) as bot:
        await settled(bot)  # the made-up threads below are not compared with Discord
        empty = await answer(emulator, "stats", world.alice, world.announcements)
        assert "0 posts" in empty.content and "Nobody has commented this month yet" in empty.content
        from bot.storage.db import utcnow

        now = utcnow()
        post = await add_post(bot.database, "Talked about", guild_id=world.guild.id, thread_id=THREAD)
        old = await add_post(bot.database, "Old news", guild_id=world.guild.id, thread_id=THREAD + 1)
        for _ in range(3):
            await add_comment(bot.database, post, "x", author_id=31, author_name="Chatty", created=now)
        await add_comment(bot.database, post, "y", author_id=32, author_name="Private", created=now)
        for _ in range(5):  # last year: in the totals, not in this month's lists
            await add_comment(bot.database, old, "z", author_id=33, author_name="Former",
                              created=now - timedelta(days=400))
        await opt_out(bot.database, 32)
        message = await answer(emulator, "stats", world.alice, world.announcements)
        text = message.content
        assert "2 posts · 9 comments · 3 participants" in text and "**Talked about** · 4 comments" in text
        assert "Chatty · 3 comments" in text and "Private" not in text
        assert "Old news" not in text and "Former" not in text
        assert_mentions_nobody(message)
