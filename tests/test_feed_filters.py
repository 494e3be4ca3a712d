"""Per-feed filters: /feed filter with words and a /regex/, posts it drops stored but not announced,
/feed list and /feed test show it, a catastrophic expression times out without stalling the loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.feeds import filters
from bot.feeds.filters import MAX_PATTERN_LENGTH, FeedFilter, FilterError
from tests.announcements_support import add_feed, announcement_messages, first_cycle, wait_for
from tests.conftest import BOTH_ENGINES, bot_settings, running_bot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.feeds_support import FeedServer, Item, rss_document

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

NOW = datetime.now(UTC)


def items(*titles: str, summary: str = "", start: int = 1) -> list[Item]:
    return [Item(title, f"https://blog.example.com/{n}/", f"post-{n}", NOW - timedelta(minutes=n), summary)
            for n, title in enumerate(titles, start)]


async def command(emulator: FakeDiscord, world: World, name: str, options: dict[str, object]) -> str:
    return await emulator.invoke(name, world.owner, world.announcements, options).answer_text(timeout=15)


async def announced_titles(emulator: FakeDiscord, world: World) -> list[str]:
    return [m.embeds[0]["title"] for m in announcement_messages(emulator, world.announcements.id)]


def test_words_match_whole_words_in_title_categories_or_summary() -> None:
    rule = FeedFilter.parse("python, Rust", "draft sponsored")
    assert rule.keeps("Rust 2.0 is out", (), "")
    assert not rule.keeps("rusty nails", (), "")  # whole words only
    assert rule.keeps("Weekly notes", ("PYTHON",), "")  # a category
    assert rule.keeps("Weekly notes", (), "This week: python packaging.")  # the summary
    assert not rule.keeps("Python draft", (), "")  # excluded
    assert FeedFilter.parse(None, "/^ad:/").keeps("Hello", (), "") and not FeedFilter.parse(None, "/^ad:/").keeps(
        "AD: buy", (), "")
    with pytest.raises(FilterError, match="not a valid regular expression"):
        FeedFilter.parse("/(unclosed/", None)
    with pytest.raises(FilterError, match="at most"):
        FeedFilter.parse("/" + "a" * (MAX_PATTERN_LENGTH + 1) + "/", None)


async def test_filter_with_words_and_a_regex_through_discord(emulator: FakeDiscord, world: World,
                                                             tmp_path: Path) -> None:
    server = await FeedServer().start()
    try:
        served = server.serve("/feed.xml", rss_document(items(
            "Python 3.14 released", "Rust tips", "Python draft notes", "Cooking pasta")))
        async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
            await first_cycle(bot)
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            refused = await command(emulator, world, "feed filter", {"feed": str(feed_id), "include": "/(bad/"})
            assert refused.startswith("Filter not saved:") and "not a valid regular expression" in refused
            saved = await command(emulator, world, "feed filter",
                                  {"feed": str(feed_id), "include": "python, rust", "exclude": "draft"})
            assert "include python rust; exclude draft" in saved
            await command(emulator, world, "feed poll", {"feed": str(feed_id)})
            await wait_for(lambda: bot.database.fetch_value(
                "SELECT count(*) = 2 FROM announcements WHERE state = 'threaded'"))
            assert sorted(await announced_titles(emulator, world)) == ["Python 3.14 released", "Rust tips"]
            rows = await bot.database.fetch_all(
                "SELECT p.title, a.state, a.filtered FROM posts AS p JOIN announcements AS a ON a.post_id = p.id "
                "ORDER BY p.title")
            assert [tuple(row) for row in rows] == [
                ("Cooking pasta", "skipped", 1), ("Python 3.14 released", "threaded", 0),
                ("Python draft notes", "skipped", 1), ("Rust tips", "threaded", 0)]
            listing = await command(emulator, world, "feed list", {})
            assert "filter: include python rust; exclude draft" in listing
            tested = await command(emulator, world, "feed test", {"feed": str(feed_id)})
            assert "🚫 dropped: [Cooking pasta]" in tested and "✅ kept: [Rust tips]" in tested
            assert "🚫 dropped: [Python draft notes]" in tested

            # A regular expression replaces the words; the dropped posts stay dropped (stored, not announced).
            await command(emulator, world, "feed filter", {"feed": str(feed_id), "include": r"/^release v\d+/"})
            served.body = rss_document(items("Release v2 is here", "Release notes without number", start=10))
            await command(emulator, world, "feed poll", {"feed": str(feed_id)})
            await wait_for(lambda: bot.database.fetch_value(
                "SELECT count(*) = 3 FROM announcements WHERE state = 'threaded'"))
            assert "Release v2 is here" in await announced_titles(emulator, world)
            assert "Release notes without number" not in await announced_titles(emulator, world)

            cleared = await command(emulator, world, "feed filter", {"feed": str(feed_id), "clear": True})
            assert "no filter" in cleared
            assert "filter:" not in await command(emulator, world, "feed list", {})
    finally:
        await server.close()


async def test_a_catastrophic_regex_times_out_without_stalling_the_loop(
        emulator: FakeDiscord, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.WARNING, logger="bot.feeds.filters")
    monkeypatch.setattr(filters, "_timed_out", set())  # logged once per pattern and process: this run's own
    evil = "a" * 5000 + "b"
    server = await FeedServer().start()
    longest = 0.0
    ticking = True

    async def ticker() -> None:  # the longest gap between two 10 ms ticks of the event loop
        nonlocal longest
        loop = asyncio.get_running_loop()
        while ticking:
            before = loop.time()
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - before - 0.01)

    try:
        server.serve("/feed.xml", rss_document(items(evil, "aaaa", evil + " again", summary="")))
        async with running_bot(emulator, bot_settings(emulator, tmp_path, allow_private_feeds=True)) as bot:
            await first_cycle(bot)
            feed_id = await add_feed(bot.database, world.guild.id, world.announcements.id,
                                     url=server.url("/feed.xml"))
            saved = await command(emulator, world, "feed filter", {"feed": str(feed_id), "include": "/(a+)+$/"})
            assert "include /(a+)+$/" in saved
            measuring = asyncio.create_task(ticker())
            await command(emulator, world, "feed poll", {"feed": str(feed_id)})
            await wait_for(lambda: bot.database.fetch_value(
                "SELECT count(*) = 1 FROM announcements WHERE state = 'threaded'"))
            tested = await command(emulator, world, "feed test", {"feed": str(feed_id)})
            ticking = False
            await measuring
            assert await announced_titles(emulator, world) == ["aaaa"]  # the timed-out ones count as no match
            assert tested.count("🚫 dropped") == 2 and tested.count("✅ kept") == 1
            print(f"longest event-loop stall while matching /(a+)+$/: {longest * 1000:.1f} ms")
            assert longest < 2.0  # bounded by the per-match time limit, and matching runs off the loop
        timed_out = [r for r in caplog.records if "took longer than" in r.getMessage()]
        assert len(timed_out) == 1  # logged once per expression
    finally:
        await server.close()
