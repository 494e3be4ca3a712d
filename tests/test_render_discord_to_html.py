from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render.discord_to_html import (
    LINK_REL,
    MentionNames,
    discord_markdown_to_html,
    discord_markdown_to_text,
)

NAMES = MentionNames(users={123: "alice"}, channels={5: "general"}, roles={7: "mods"})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.tags


def assert_safe(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "<iframe" not in lowered
    assert not re.search(r"<[^>]*\son\w+\s*=", lowered)
    for tag, attrs in _tags(html):
        assert tag not in {"script", "img", "iframe", "style", "object", "embed", "svg"}
        assert not any(name.startswith("on") for name in attrs)
        if tag == "a":
            href = attrs.get("href") or ""
            assert re.match(r"(https?|mailto):", href, re.IGNORECASE), href
            assert attrs.get("rel") == LINK_REL
            assert attrs.get("target") == "_blank"


def render(content: str) -> str:
    html = discord_markdown_to_html(content, names=NAMES)
    assert_safe(html)
    return html


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("**bold**", "<p><strong>bold</strong></p>"),
        ("*it* _it_", "<p><em>it</em> <em>it</em></p>"),
        ("__under__", "<p><u>under</u></p>"),
        ("~~gone~~", "<p><del>gone</del></p>"),
        ("||secret||", '<p><span class="spoiler">secret</span></p>'),
        ("`a<b`", "<p><code>a&lt;b</code></p>"),
        ("__**both**__", "<p><u><strong>both</strong></u></p>"),
        ("line1\nline2", "<p>line1<br>\nline2</p>"),
        ("___both___", "<p><u><em>both</em></u></p>"),
        ("**__x__**", "<p><strong><u>x</u></strong></p>"),
        ("|| spaced ||", '<p><span class="spoiler"> spaced </span></p>'),
        ("__a `__` b__", "<p><u>a <code>__</code> b</u></p>"),
        ("snake_case_name", "<p>snake_case_name</p>"),
        ("not__closed", "<p>not__closed</p>"),
    ],
)
def test_inline_formatting(content: str, expected: str) -> None:
    assert render(content) == expected


def test_fenced_code_block() -> None:
    out = render("```py\nif a < b:\n    print('<script>')\n```")
    assert out == (
        "<pre><code class=\"language-py\">if a &lt; b:\n    print('&lt;script&gt;')\n</code></pre>"
    )


def test_code_language_is_sanitised() -> None:
    out = render('```py"onload=x\ncode\n```')
    assert 'class="language-pyonloadx"' in out


def test_headings_only_three_levels_at_line_start() -> None:
    out = render("# One\n## Two\n### Three\n#### Four\nnot # heading")
    assert "<h3>One</h3>" in out
    assert "<h4>Two</h4>" in out
    assert "<h5>Three</h5>" in out
    assert "#### Four" in out
    assert "not # heading" in out


def test_subtext() -> None:
    assert render("-# small print") == '<p class="subtext"><small>small print</small></p>'


def test_block_quotes() -> None:
    out = render("> one\n> two\nafter")
    assert out.startswith("<blockquote>\n<p>one<br>\ntwo</p>\n</blockquote>")
    assert out.endswith("<p>after</p>")
    out = render("before\n>>> all\nof\nthis")
    assert out.startswith("<p>before</p>")
    assert "<blockquote>\n<p>all<br>\nof<br>\nthis</p>\n</blockquote>" in out
    assert render(">not a quote") == "<p>&gt;not a quote</p>"
    assert render("> > nested") == "<blockquote>\n<p>&gt; nested</p>\n</blockquote>"


def test_lists() -> None:
    out = render("- a\n- b\n  - c\n\n1. x\n2. y")
    assert "<ul>" in out and "<li>a</li>" in out and "<ol>" in out and "<li>y</li>" in out


def test_links() -> None:
    out = render("[site](https://example.com) https://bare.example/a_b_c <https://angle.example>")
    assert f'<a href="https://example.com" target="_blank" rel="{LINK_REL}">site</a>' in out
    assert ">https://bare.example/a_b_c</a>" in out
    assert 'href="https://angle.example"' in out
    assert out.count("<a ") == 3


def test_mentions_emoji_and_timestamps() -> None:
    out = render("<@123> <@!123> <@999> <#5> <#6> <@&7> <@&8> <:blob:1> <a:party:2> <t:1700000000:R>")
    assert out.count('<span class="mention mention-user">@alice</span>') == 2
    assert "@unknown-user" in out
    assert '<span class="mention mention-channel">#general</span>' in out
    assert "#unknown-channel" in out
    assert '<span class="mention mention-role">@mods</span>' in out
    assert "@unknown-role" in out
    assert '<span class="emoji">:blob:</span>' in out
    assert '<span class="emoji">:party:</span>' in out
    assert '<time datetime="2023-11-14T22:13:20Z">2023-11-14 22:13 UTC</time>' in out


def test_mention_names_are_escaped() -> None:
    names = MentionNames(users={1: "<script>alert(1)</script>"})
    out = discord_markdown_to_html("<@1>", names=names)
    assert_safe(out)
    assert "&lt;script&gt;" in out


def test_out_of_range_timestamp_is_text() -> None:
    assert "&lt;t:99999999999999999999:R&gt;" in render("<t:99999999999999999999:R>")


@pytest.mark.parametrize(
    "content",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![img](http://tracker.example/pixel.png)",
        '![img](http://x "t" onerror="alert(1)")',
        "<iframe src=//evil>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "[**<img src=x onerror=alert(1)>**](https://ok)",
        '<https://ok.example/"onmouseover="alert(1)>',
        "```\n</code></pre><script>alert(1)</script>\n```",
        "<!-- comment --><style>*{}</style>",
        '[a](https://x.example/"><script>alert(1)</script>)',
        "||<svg onload=alert(1)>||",
    ],
)
def test_hostile_input_is_harmless(content: str) -> None:
    out = render(content)
    # Whatever is left of the payload is text, never markup.
    for tag, attrs in _tags(out):
        assert tag in {"p", "a", "br", "strong", "span", "pre", "code", "em", "u", "del"}
        assert all("alert" not in (value or "") for name, value in attrs.items() if name != "href")


def test_image_syntax_renders_as_link() -> None:
    out = render("![alt](https://img.example/a.png)")
    assert out == f'<p>!<a href="https://img.example/a.png" target="_blank" rel="{LINK_REL}">alt</a></p>'


def test_plain_text() -> None:
    text = discord_markdown_to_text(
        "**Hi** <@123>, see <#5> and ||this|| [link](https://x.example) <:blob:1>\n> quoted\n```\ncode\n```",
        names=NAMES,
    )
    assert text == "Hi @alice, see #general and this link :blob:\nquoted\ncode"
    assert discord_markdown_to_text("<@42>") == "@unknown-user"


_PIECES = st.sampled_from(
    [
        "*", "**", "_", "__", "~~", "||", "`", "```", "> ", ">>> ", "# ", "-# ", "- ", "1. ", "\n",
        "[", "]", "(", ")", "![", "<", ">", "&", "&#", ";", "javascript:", "data:", "http://a.b",
        "<script>", "<img src=x onerror=alert(1)>", "<@1>", "<#2>", "<@&3>", "<:e:4>", "<t:1:R>",
        "\"", "'", "onload=", "x", " ",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_markdown_soup_is_safe(content: str) -> None:
    render(content)
    discord_markdown_to_text(content, names=NAMES)


@settings(deadline=None)
@given(st.text())
def test_arbitrary_text_is_safe(content: str) -> None:
    render(content)
    discord_markdown_to_text(content)


def test_deep_nesting_does_not_raise() -> None:
    render("> " * 500 + "deep")
    render("- " * 500 + "deep")
    render("**" * 2000 + "x" + "**" * 2000)
    render("[" * 3000 + "x" + "](http://a)" * 3000)
