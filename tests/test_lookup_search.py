"""Search, latest posts, details, comment pages, stats and autocomplete against a seeded database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.lookup import format as fmt
from bot.lookup import search as lookup
from bot.lookup.query import build_fts_query
from bot.storage import search, search_store
from bot.storage.db import Database
from tests.conftest import BOTH_ENGINES
from tests.lookup_support import (
    BASE_TIME,
    GUILD,
    OTHER_GUILD,
    add_comment,
    add_post,
    add_reaction,
    opt_out,
)

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL


async def test_search_finds_posts_and_comments_with_links(database: Database) -> None:
    post = await add_post(database, "Sourdough basics", summary="Flour, water, salt and patience.",
                          thread_id=500000000000000001, url="https://blog.example.com/sourdough")
    other = await add_post(database, "Knitting", thread_id=500000000000000002)
    comment = await add_comment(database, post, "My sourdough starter died twice", thread_id=500000000000000001)
    await add_comment(database, other, "nothing about bread here")
    await add_post(database, "Sourdough elsewhere", guild_id=OTHER_GUILD)

    results = await lookup.search(database, GUILD, build_fts_query("sourdough"))
    assert [hit.post.post_id for hit in results.posts] == [post]
    assert [hit.message_id for hit in results.comments] == [comment]
    assert results.comments[0].post.comment_count == 1
    text = fmt.format_search(results, build_fts_query("sourdough"))
    assert "**Sourdough** basics" in text or "**Sourdough basics**" in text
    assert f"https://discord.com/channels/{GUILD}/500000000000000001/{comment}" in text
    assert "(<https://blog.example.com/sourdough>)" in text
    assert "starter died" in text and "Sourdough elsewhere" not in text


async def test_snippet_highlights_and_escapes(database: Database) -> None:
    post = await add_post(database, "Post", thread_id=500000000000000003)
    await add_comment(database, post, "use *stars* and @everyone with <@123> near the keyword here",
                      thread_id=500000000000000003)
    query = build_fts_query("keyword")
    text = fmt.format_search(await lookup.search(database, GUILD, query), query)
    assert "near the **keyword** here" in text
    assert "\\*stars\\*" in text
    assert "@everyone" not in text and "<@123>" not in text


async def test_hidden_and_deleted_comments_are_not_found(database: Database) -> None:
    post = await add_post(database, "Post")
    await add_comment(database, post, "secret hidden words", hidden=True)
    await add_comment(database, post, "secret deleted words", deleted=True)
    results = await lookup.search(database, GUILD, build_fts_query("secret"))
    assert results.comments == () and results.posts == ()
    text = fmt.format_search(results, build_fts_query("secret"))
    assert text.startswith("Nothing found for `secret`")


async def test_common_words_rank_only_the_newest_window(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "RANKED_WINDOW", 20)
    monkeypatch.setattr(search_store, "RANKED_WINDOW", 20)
    post = await add_post(database, "Busy post")
    # An old comment that would rank best (the word three times in a short text) ...
    old_best = await add_comment(database, post, "common common common")
    for index in range(60):
        await add_comment(database, post, f"a longer comment number {index} with the common word in it")
    results = await lookup.search(database, GUILD, build_fts_query("common"), comment_limit=5)
    # ... is outside the newest 20 matches, so it is not ranked; newer ones are shown.
    assert old_best not in [hit.message_id for hit in results.comments]
    assert len(results.comments) == 5 and results.more_comments
    monkeypatch.setattr(search, "RANKED_WINDOW", 1000)
    monkeypatch.setattr(search_store, "RANKED_WINDOW", 1000)
    results = await lookup.search(database, GUILD, build_fts_query("common"), comment_limit=5)
    assert results.comments[0].message_id == old_best


async def test_long_results_fit_the_message_limit(database: Database) -> None:
    for index in range(10):
        post = await add_post(database, f"{'Very long title words ' * 12} {index}", thread_id=510000000000000000 + index,
                              summary="lorem " * 200)
        for _ in range(3):
            await add_comment(database, post, "lorem ipsum " * 300, thread_id=510000000000000000 + index)
    query = build_fts_query("lorem")
    text = fmt.format_search(await lookup.search(database, GUILD, query, post_limit=10, comment_limit=10), query)
    assert len(text) <= 2000
    latest = fmt.format_latest(await search.latest_posts(database, GUILD, 10))
    assert len(latest) <= 2000 and latest.startswith("**Latest")


async def test_latest_posts_newest_first_with_counts(database: Database) -> None:
    first = await add_post(database, "First", published=BASE_TIME, thread_id=520000000000000001)
    second = await add_post(database, "Second", published=BASE_TIME + timedelta(days=1))
    await add_comment(database, first, "hello")
    await add_comment(database, first, "gone", deleted=True)
    posts = await search.latest_posts(database, GUILD, 5)
    assert [(p.post_id, p.comment_count) for p in posts] == [(second, 0), (first, 1)]
    text = fmt.format_latest(posts)
    assert f"https://discord.com/channels/{GUILD}/520000000000000001" in text
    assert "No posts yet" in fmt.format_latest([])


async def test_post_details(database: Database) -> None:
    post = await add_post(database, "Details", author="Ann", summary="About things", thread_id=530000000000000001)
    one = await add_comment(database, post, "first", author_id=11, author_name="Bea")
    await add_comment(database, post, "second", author_id=12, author_name="Cy")
    await add_comment(database, post, "third", author_id=11, author_name="Bea")
    await add_comment(database, post, "private", author_id=13, author_name="Opted")
    await opt_out(database, 13)
    await add_reaction(database, one, "👍", 3)
    await add_reaction(database, one, "party:123456789012345678", 1)
    details = await search.post_details(database, GUILD, post)
    assert details is not None
    assert details.participant_count == 3
    assert details.participant_names == ("Bea", "Cy")
    assert [(r.emoji, r.count) for r in details.top_reactions] == [("👍", 3), ("party:123456789012345678", 1)]
    text = fmt.format_post_details(details)
    assert "by Ann" in text and "**Comments:** 4" in text and "👍 3" in text and ":party: 1" in text
    assert await search.post_details(database, OTHER_GUILD, post) is None


async def test_comment_pages(database: Database) -> None:
    post = await add_post(database, "Paged", thread_id=540000000000000001)
    for index in range(20):
        await add_comment(database, post, f"comment {index}", author_name=f"user{index}")
    page = await search.comment_page(database, GUILD, post, 3, 8)
    assert page is not None and page.page == 3 and page.page_count == 3 and page.total == 20
    assert [c.text for c in page.comments] == [f"comment {i}" for i in range(16, 20)]
    clamped = await search.comment_page(database, GUILD, post, 99, 8)
    assert clamped is not None and clamped.page == 3
    text = fmt.format_comment_page(page)
    assert "page 3/3" in text and "comment 19" in text and len(text) <= 2000


async def test_stats_exclude_opted_out_and_bots(database: Database) -> None:
    post = await add_post(database, "Stats", thread_id=550000000000000001)
    for _ in range(3):
        await add_comment(database, post, "x", author_id=21, author_name="Quiet")
    await add_comment(database, post, "y", author_id=22, author_name="Loud")
    for _ in range(5):
        await add_comment(database, post, "z", author_id=23, author_name="Gone")
    await add_comment(database, post, "beep", author_id=24, author_name="Bot", is_bot=True)
    await opt_out(database, 23)
    stats = await search.guild_stats(database, GUILD, BASE_TIME - timedelta(days=1))
    assert (stats.posts, stats.comments) == (1, 10)
    assert [(c.name, c.count) for c in stats.top_commenters] == [("Quiet", 3), ("Loud", 1)]
    assert stats.most_discussed[0].comments_in_period == 10
    text = fmt.format_stats(stats)
    assert "Gone" not in text and "Quiet · 3 comments" in text


async def test_title_autocomplete(database: Database) -> None:
    for index in range(40):
        await add_post(database, f"Garden diary {index}", published=BASE_TIME + timedelta(hours=index))
    await add_post(database, "Kitchen notes")
    choices = await lookup.title_choices(database, GUILD, "gar di")
    assert len(choices) == 25 and choices[0].title == "Garden diary 39"
    assert [c.title for c in await lookup.title_choices(database, GUILD, "kit")] == ["Kitchen notes"]
    assert len(await lookup.title_choices(database, GUILD, "")) == 25
    assert await lookup.title_choices(database, GUILD, '"(') != []  # nothing searchable: newest posts
    found = await lookup.resolve_post(database, GUILD, "kitchen NOTES")
    assert found is not None and found.title == "Kitchen notes"
    assert await lookup.resolve_post(database, GUILD, "nothing like this") is None
    assert fmt.choice_name("x" * 300).endswith("…") and len(fmt.choice_name("x" * 300)) <= 100
