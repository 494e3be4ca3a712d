from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render.html_to_discord import first_image_src, html_to_discord, html_to_plain_text
from bot.render.text import ZWSP

BASE = "https://blog.example/posts/hello/"


def test_drops_dangerous_elements_with_content() -> None:
    html = (
        "<p>keep</p><script>alert(1)</script><style>p{}</style><iframe src=x>frame</iframe>"
        "<object>obj</object><embed src=x><form>form <input></form><noscript>ns</noscript>"
        "<template>tpl</template>"
    )
    assert html_to_discord(html) == "keep"


def test_links_are_absolute_and_safe() -> None:
    html = (
        '<p><a href="/about">About</a> <a href="https://x.org/a">X</a> '
        '<a href="mailto:me@x.org">mail</a> <a href="javascript:alert(1)">bad</a> '
        '<a href="java&#10;script:alert(1)">bad2</a> <a href="data:text/html,x">data</a></p>'
    )
    out = html_to_discord(html, base_url=BASE)
    assert "[About](https://blog.example/about)" in out
    assert "[X](https://x.org/a)" in out
    assert "[mail](mailto:me@x.org)" in out
    assert "javascript" not in out
    assert "data:" not in out
    assert "bad bad2 data" in out


def test_relative_link_without_base_is_plain_text() -> None:
    assert html_to_discord('<a href="/x">text</a>') == "text"


def test_link_url_with_spaces_and_parens_is_encoded() -> None:
    out = html_to_discord('<a href="/a b(1)">t</a>', base_url=BASE)
    assert out == "[t](https://blog.example/a%20b%281%29)"


def test_images_dropped_but_alt_kept() -> None:
    out = html_to_discord('<p>before <img src="/i.png" alt="A cat"> after</p><img src="/j.png">')
    assert out == "before A cat after"


def test_headings_become_bold_lines() -> None:
    out = html_to_discord("<h1>Title</h1><h3>Sub  title</h3><p>Body</p>")
    assert out == "**Title**\n\n**Sub title**\n\nBody"


def test_lists_and_quotes_kept() -> None:
    out = html_to_discord("<ul><li>one</li><li>two</li></ul><ol><li>a</li></ol><blockquote>q</blockquote>")
    assert "- one\n- two" in out
    assert "1. a" in out
    assert "> q" in out


def test_whitespace_entities_and_invisibles() -> None:
    out = html_to_discord("<p>a   b&amp;c &lt;tag&gt;\u200b\x00</p>\n\n\n<p></p><p></p><p>next</p>")
    assert out == "a b&c <tag>\n\nnext"


def test_markdown_in_text_is_escaped() -> None:
    assert html_to_discord("<p>2*3 snake_case</p>") == r"2\*3 snake\_case"


def test_mentions_neutralised() -> None:
    out = html_to_discord("<p>@everyone &lt;@123&gt;</p>")
    assert out == f"@{ZWSP}everyone <@{ZWSP}123>"


def test_code_blocks_keep_whitespace() -> None:
    out = html_to_discord("<pre><code>x  =  1\n\n\ny</code></pre>")
    assert out == "```\nx  =  1\n\n\ny\n```"


def test_limit_cuts_at_word() -> None:
    out = html_to_discord("<p>" + "word " * 100 + "</p>", limit=50)
    assert len(out) <= 50
    assert out.endswith("word…")


def test_limit_does_not_leave_half_link() -> None:
    out = html_to_discord(
        '<p>Read <a href="https://example.com/a/very/long/path">this link</a></p>', limit=30
    )
    assert len(out) <= 30
    assert "](" not in out


def test_limit_closes_code_fence() -> None:
    out = html_to_discord("<p>intro</p><pre><code>" + "line of code\n" * 20 + "</code></pre>", limit=80)
    assert len(out) <= 80
    assert out.count("```") % 2 == 0


def test_plain_text() -> None:
    html = "<h1>Hi &amp; bye</h1><p>one   <b>two</b></p><script>x</script><ul><li>a</li><li>b</li></ul>"
    assert html_to_plain_text(html) == "Hi & bye\none two\na\nb"


def test_first_image_src() -> None:
    assert (
        first_image_src('<p>x</p><img src="/a.png"><img src="/b.png">', BASE) == "https://blog.example/a.png"
    )
    assert first_image_src('<img src="javascript:x"><img src="http://c/d.jpg">', None) == "http://c/d.jpg"
    assert first_image_src('<img src="data:image/png;base64,AA" data-src="/lazy.png">', BASE) == (
        "https://blog.example/lazy.png"
    )
    assert first_image_src('<img srcset="/s.png 1x, /t.png 2x">', BASE) == "https://blog.example/s.png"
    assert first_image_src('<img src="/rel.png">', None) is None
    assert first_image_src("no images", BASE) is None


def test_deep_nesting_does_not_raise() -> None:
    assert "deep" in html_to_discord("<div><span>" * 3000 + "deep")


@settings(deadline=None)
@given(st.text(), st.one_of(st.none(), st.integers(min_value=0, max_value=500)))
def test_never_raises_and_respects_limit(html: str, limit: int | None) -> None:
    out = html_to_discord(html, base_url=BASE, limit=limit)
    if limit is not None:
        assert len(out) <= limit
    assert "@everyone" not in out
    html_to_plain_text(html)
    first_image_src(html, BASE)


_TAGS = st.sampled_from(
    ["p", "a", "b", "i", "script", "img", "ul", "li", "pre", "code", "h2", "blockquote", "div"]
)


@st.composite
def _html_soup(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=15))):
        tag = draw(_TAGS)
        attr = draw(
            st.sampled_from(["", ' href="javascript:alert(1)"', ' href="/x"', ' src="/i.png" alt="a*"'])
        )
        parts.append(f"<{tag}{attr}>{draw(st.text(max_size=10))}")
        if draw(st.booleans()):
            parts.append(f"</{tag}>")
    return "".join(parts)


@settings(deadline=None)
@given(_html_soup())
def test_structured_html_never_raises(html: str) -> None:
    out = html_to_discord(html, base_url=BASE, limit=200)
    assert "javascript:" not in out
    assert len(out) <= 200
