from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.render.text import (
    ZWSP,
    cut_at_word,
    escape_discord_markdown,
    neutralise_mentions,
    thread_name,
)


def test_cut_at_word_unchanged_when_short() -> None:
    assert cut_at_word("hello world", 11) == "hello world"


def test_cut_at_word_cuts_at_boundary() -> None:
    assert cut_at_word("hello wonderful world", 15) == "hello…"
    assert cut_at_word("hello wonderful world", 16) == "hello wonderful…"


def test_cut_at_word_hard_cuts_giant_word() -> None:
    assert cut_at_word("a" * 50, 10) == "a" * 9 + "…"


def test_cut_at_word_custom_ellipsis_and_tiny_limits() -> None:
    assert cut_at_word("hello world again", 12, ellipsis="...") == "hello..."
    assert cut_at_word("hello", 1) == "h"
    assert cut_at_word("hello", 0) == ""


def test_cut_at_word_counts_code_points() -> None:
    text = "😀" * 20
    assert len(cut_at_word(text, 10)) == 10


def test_neutralise_mentions() -> None:
    out = neutralise_mentions("@everyone @here <@123> <@!456> <@&789> mail@example.com")
    assert out == (f"@{ZWSP}everyone @{ZWSP}here <@{ZWSP}123> <@{ZWSP}!456> <@{ZWSP}&789> mail@example.com")
    assert neutralise_mentions(out) == out


def test_escape_discord_markdown_inline() -> None:
    assert escape_discord_markdown("**bold** _x_ ~~s~~ ||sp|| `c` [a](b)") == (
        r"\*\*bold\*\* \_x\_ \~\~s\~\~ \|\|sp\|\| \`c\` \[a\](b)"
    )


def test_escape_discord_markdown_line_starts() -> None:
    assert escape_discord_markdown("# Title") == r"\# Title"
    assert escape_discord_markdown("> quote") == r"\> quote"
    assert escape_discord_markdown("-# small") == r"\-# small"
    assert escape_discord_markdown("- item") == r"\- item"
    assert escape_discord_markdown("1. first") == r"1\. first"
    # Not formatting, so left readable.
    assert escape_discord_markdown("C# and 5 > 3 - ok #1") == "C# and 5 > 3 - ok #1"


def test_escape_discord_markdown_keeps_urls() -> None:
    assert escape_discord_markdown("see https://x.com/a_b_c *now*") == r"see https://x.com/a_b_c \*now\*"


def test_thread_name() -> None:
    assert thread_name("  Hello\n\tworld\x00\u200b ") == "Hello world"
    assert thread_name("") == "Discussion"
    assert thread_name(" \u200b\x07 ") == "Discussion"
    long = thread_name("word " * 50)
    assert len(long) <= 100
    assert long.endswith("…")
    assert not long.removesuffix("…").endswith(" ")


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_cut_at_word_properties(text: str, limit: int) -> None:
    result = cut_at_word(text, limit)
    assert len(result) <= limit
    if len(text) <= limit:
        assert result == text
    else:
        assert text.startswith(result.removesuffix("…"))
        if text.strip() and limit >= 2:
            assert result.removesuffix("…").strip() or not text[: limit - 1].strip()


@given(st.text())
def test_thread_name_properties(title: str) -> None:
    name = thread_name(title)
    assert 1 <= len(name) <= 100
    assert name.strip() == name


@given(st.text())
def test_text_helpers_never_raise(text: str) -> None:
    escape_discord_markdown(text)
    out = neutralise_mentions(text)
    assert "@everyone" not in out
    assert "@here" not in out
