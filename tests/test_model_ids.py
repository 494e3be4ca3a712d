"""Ids typed by users never reach SQLite as integers it cannot hold (issue 18)."""

from __future__ import annotations

from bot.lookup import search
from bot.model.ids import MAX_SQLITE_INTEGER, parse_id
from bot.storage import blog
from bot.storage.db import Database
from bot.web.discussion import load_discussion
from tests.web_support import GUILD, add_comment, add_post


def test_parse_id() -> None:
    assert parse_id(" 42 ") == 42
    assert parse_id(str(MAX_SQLITE_INTEGER)) == MAX_SQLITE_INTEGER
    for text in (str(MAX_SQLITE_INTEGER + 1), "99999999999999999999999", "9" * 5000, "0", "-1", "+1", "1.0",
                 "", "²", "١٢", "12a"):
        assert parse_id(text) is None, text


async def test_resolve_post_with_a_huge_number_is_not_found(database: Database) -> None:
    post = await add_post(database, "https://blog.example.com/a/", "A post")
    assert (await search.resolve_post(database, GUILD, "99999999999999999999999")) is None
    found = await search.resolve_post(database, GUILD, str(post))
    assert found is not None and found.post_id == post


async def test_a_huge_mention_in_a_comment_does_not_break_its_page(database: Database) -> None:
    # Mentions are text anyone can type in Discord; the page looks their names up by id.
    post_id = await add_post(database, "https://blog.example.com/a/", "A post")
    await add_comment(database, post_id, "hi <@99999999999999999999999> and <@501>", author_id=501,
                      author_name="Ann")
    assert await blog.known_author_names(database, [99999999999999999999999, 501]) == {501: "Ann"}
    post = await blog.post_by_id(database, post_id)
    assert post is not None
    discussion = await load_discussion(database, post)
    assert discussion.comment_count == 1
