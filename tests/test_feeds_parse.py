"""Parsing: the project's own small fixtures, normalisation rules, hostile documents, properties."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.errors import EmptyResponse, FeedError, FeedSyntaxError, NotAFeed, UnsafeFeed
from bot.feeds.identity import RawIdentity, assign_identities
from bot.feeds.parse import SUMMARY_LIMIT, parse_feed, parse_feed_in_thread
from bot.feeds.urls import canonicalize_url
from tests.feeds_support import FIXTURES, Item, rss_document

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def parse_fixture(name: str, url: str, content_type: str | None = None):
    return parse_feed((FIXTURES / name).read_bytes(), url=url, content_type=content_type, now=NOW)


def test_wordpress_feed_with_empty_guids_uses_clean_canonical_links() -> None:
    feed = parse_fixture("wordpress_empty_guids.xml", "https://blog.example.com/feed/", "application/rss+xml")
    assert feed.kind == "rss"
    assert feed.title == "A Small WordPress Blog"
    assert feed.home_url == "https://blog.example.com/"
    newest, oldest = feed.entries
    # Empty guids: identity falls back to the canonical link (host lower-cased, utm_* removed).
    assert newest.identity == "link:https://blog.example.com/2026/11/second/"
    assert newest.link == "https://blog.example.com/2026/11/second/"
    assert newest.guid is None
    assert newest.title == "Second & newest post"
    assert newest.author == "Kirk"
    assert newest.categories == ("Essays", "Conversation")
    assert newest.published == datetime(2026, 11, 10, 8, 30, tzinfo=UTC)
    assert newest.date_known and newest.updated is None
    assert "@everyone" not in newest.summary  # mentions are neutralised in the summary
    # No media elements: the first <img> of the content, made absolute.
    assert newest.image_url == "https://blog.example.com/wp-content/uploads/photo.jpg"
    # media:thumbnail wins over an image enclosure.
    assert oldest.image_url == "https://cdn.example.com/thumb.png"
    assert oldest.summary == "Words words words."


def test_atom_links_resolve_against_xml_base_and_missing_title_falls_back() -> None:
    feed = parse_fixture("atom_xml_base.atom", "https://www.example.org/feed.atom")
    assert feed.kind == "atom"
    assert feed.title == "Relative Links"  # type="html" title turned into plain text
    first, second = feed.entries
    assert first.link == "https://www.example.org/blog/posts/relative-entry.html"
    assert first.identity == "guid:tag:example.org,2026:1"
    assert first.published == datetime(2026, 11, 12, 8, 0, tzinfo=UTC)
    assert first.updated == datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    assert first.author == "Ann Author"
    assert first.summary == "Summary with [a link](https://www.example.org/blog/other.html)."
    assert second.link == "https://www.example.org/elsewhere/root-relative.html"
    assert second.title.startswith("This entry has no title, so its first words")
    assert second.title.endswith("…") and len(second.title) <= 80


def test_json_feed_1_1() -> None:
    feed = parse_fixture("jsonfeed_v11.json", "https://json.example.net/feed.json", "application/feed+json")
    assert feed.kind == "json"
    assert feed.title == "JSON Blog"
    two, one = feed.entries
    assert (two.identity, two.link, two.title) == ("guid:2", "https://json.example.net/posts/two", "Two")
    assert two.published == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert two.author == "Feed Author" and one.author == "Item Author"
    assert two.categories == ("json", "feeds")
    assert two.image_url == "https://json.example.net/img/two.png"
    assert one.image_url == "https://json.example.net/img/one.jpg"
    assert one.title == "Only text, no title here."


def test_json_feed_1_0_and_json_that_is_not_a_feed() -> None:
    body = (b'{"version": "https://jsonfeed.org/version/1", "title": "Old", "items": '
            b'[{"id": 7, "url": "https://old.example/7", "content_html": "<b>Hi</b>"}]}')
    feed = parse_feed(body, url="https://old.example/feed.json", content_type="application/json", now=NOW)
    assert [entry.identity for entry in feed.entries] == ["guid:7"]
    assert feed.entries[0].summary == "**Hi**"
    with pytest.raises(NotAFeed, match="not a feed: the server sent JSON that is not a JSON Feed"):
        parse_feed(b'{"rss": {"channel": {}}}', url="https://x.example/", content_type="application/json")
    with pytest.raises(FeedSyntaxError, match=r"^JSON error at line 1: "):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1", "items": [', url="https://x.example/",
                   content_type="application/json")


def test_rdf_feed_and_undated_items_get_the_first_seen_time() -> None:
    feed = parse_fixture("rdf_rss10.rdf", "https://rdf.example.com/rss")
    assert [entry.title for entry in feed.entries] == ["RDF B", "RDF A"]
    undated = feed.entries[0]
    assert undated.published == NOW and not undated.date_known


def test_specific_errors_for_unusable_documents() -> None:
    with pytest.raises(NotAFeed) as html_error:
        parse_fixture("not_a_feed.html", "https://blog.example.com/", "text/html; charset=utf-8")
    assert html_error.value.message == "not a feed: the server sent an HTML page (text/html)"
    with pytest.raises(EmptyResponse, match="^empty response"):
        parse_feed(b"  \r\n ", url="https://x.example/", content_type="application/rss+xml")
    with pytest.raises(EmptyResponse):
        parse_feed(b"", url="https://x.example/", content_type=None)
    with pytest.raises(FeedSyntaxError, match=r"^XML error at line 2: "):
        parse_feed(b'<?xml version="1.0"?>\n<rss <<', url="https://x.example/", content_type="text/xml")


def test_partly_broken_feed_yields_what_parsed_and_says_what_was_wrong() -> None:
    feed = parse_fixture("broken.xml", "https://broken.example/feed")
    assert [entry.title for entry in feed.entries] == ["a"]
    assert feed.problem is not None and feed.problem.startswith("XML error at line 5")
    # No link at all: the item points at the feed's site, unique per identity.
    assert feed.entries[0].link.startswith("https://broken.example/feed#item-")


@pytest.mark.parametrize("name", ["billion_laughs.xml", "xxe.xml"])
def test_xml_bombs_and_external_entities_are_refused_fast(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeFeed, match="^refused: "):
        parse_fixture(name, "https://x.example/feed")
    assert time.perf_counter() - started < 2


def test_quadratic_blowup_is_refused_fast() -> None:
    value = "a" * 100_000
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{value}">]><rss version="2.0"><channel>'
            + "<item><title>" + "&a;" * 50_000 + "</title></item></channel></rss>").encode()
    started = time.perf_counter()
    with pytest.raises(UnsafeFeed):
        parse_feed(body, url="https://x.example/", content_type="application/xml")
    assert time.perf_counter() - started < 2


def test_a_short_constant_entity_is_neutralised_not_expanded() -> None:
    feed = parse_fixture("safe_entity.xml", "https://corp.example/feed")
    assert [entry.link for entry in feed.entries] == ["https://corp.example/news/1"]


def test_identity_rules() -> None:
    unique = [RawIdentity("a", "https://x/1", "One", None), RawIdentity("b", "https://x/2", "Two", None)]
    assert assign_identities(unique) == ["guid:a", "guid:b"]
    repeated = [RawIdentity("same", "https://x/1", "One", None), RawIdentity("same", "https://x/2", "Two", None)]
    assert assign_identities(repeated) == ["link:https://x/1", "link:https://x/2"]
    one_empty = [RawIdentity("a", "https://x/1", "One", None), RawIdentity("", None, "Two", "2026-01-01")]
    assert assign_identities(one_empty) == ["link:https://x/1", "title:Two|2026-01-01"]
    assert assign_identities([RawIdentity(None, None, "", None)]) == [None]


def test_summary_is_cut_at_a_word_boundary() -> None:
    words = " ".join(f"word{n}" for n in range(200))
    body = rss_document([Item("Long", "https://x.example/long", "g", NOW, f"<p>{words}</p>")])
    entry = parse_feed(body, url="https://x.example/feed", content_type=None, now=NOW).entries[0]
    assert len(entry.summary) <= SUMMARY_LIMIT
    assert entry.summary.endswith("…")
    assert entry.summary[:-1].rstrip() in words and words.startswith(entry.summary[:-1].rstrip())


def test_untitled_when_there_is_nothing_to_name_the_item_by() -> None:
    body = b'<rss version="2.0"><channel><title>T</title><item><link>https://x.example/a</link></item></channel></rss>'
    entry = parse_feed(body, url="https://x.example/feed", content_type=None, now=NOW).entries[0]
    assert entry.title == "Untitled"


def test_gzip_body_without_content_encoding_is_read() -> None:
    import gzip

    body = gzip.compress(rss_document([Item("Zipped", "https://x.example/z", "z", NOW)]))
    feed = parse_feed(body, url="https://x.example/feed", content_type="application/rss+xml", now=NOW)
    assert [entry.title for entry in feed.entries] == ["Zipped"]


async def test_parse_in_thread_gives_the_same_result() -> None:
    body = (FIXTURES / "jsonfeed_v11.json").read_bytes()
    direct = parse_feed(body, url="https://json.example.net/feed.json", content_type=None, now=NOW)
    threaded = await parse_feed_in_thread(body, url="https://json.example.net/feed.json", content_type=None, now=NOW)
    assert direct == threaded


# -- URLs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("HTTP://Example.COM:80/Path/To?utm_source=x&id=3#frag", None, "http://example.com/Path/To?id=3#frag"),
        ("http://scripting.com/2017/06/26.html#a080605", None, "http://scripting.com/2017/06/26.html#a080605"),
        ("https://example.com:443", None, "https://example.com/"),
        ("https://example.com:8443/a", None, "https://example.com:8443/a"),
        ("/blog/post", "https://Blog.Example.com/feed/", "https://blog.example.com/blog/post"),
        ("post.html", "https://example.com/blog/", "https://example.com/blog/post.html"),
        ("https://medium.com/p/abc?source=rss----1", None, "https://medium.com/p/abc"),
        ("https://x.example/?fbclid=1&q=a%20b&gclid=2", None, "https://x.example/?q=a%20b"),
        ("  https://x.example/a b  ", None, "https://x.example/a%20b"),
        ("http://[::1", None, "http://[::1"),
    ],
)
def test_canonicalize_url(url: str, base: str | None, expected: str) -> None:
    assert canonicalize_url(url, base) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.sampled_from(["https://a.example/b/", "http://x/"])))
def test_canonicalize_url_is_total_and_idempotent(url: str, base: str | None) -> None:
    once = canonicalize_url(url, base)
    assert canonicalize_url(once) == once


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    try:
        feed = parse_feed(body, url="https://fuzz.example/feed", content_type=None, now=NOW)
    except FeedError:
        return
    for entry in feed.entries:
        assert entry.identity and entry.link.startswith(("http://", "https://"))


_xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_xml_text, _xml_text, _xml_text, st.sampled_from(["", "<guid>g</guid>", "<guid></guid>"])),
                max_size=6),
       st.sampled_from(["application/rss+xml", "text/html", None]))
def test_parse_never_raises_on_feed_shaped_documents(items: list[tuple[str, str, str, str]],
                                                     content_type: str | None) -> None:
    inner = "".join(f"<item><title>{t}</title><link>{link}</link>{guid}<description>{d}</description></item>"
                    for t, link, d, guid in items)
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{inner}</channel></rss>'.encode(
        "utf-8", "surrogatepass")
    try:
        feed = parse_feed(body, url="https://fuzz.example/feed", content_type=content_type, now=NOW)
    except FeedError:
        return
    for entry in feed.entries:
        assert entry.identity and entry.link.startswith(("http://", "https://"))
        assert len(entry.summary) <= SUMMARY_LIMIT


async def test_parse_in_a_worker_process_gives_the_same_result_and_errors() -> None:
    from bot.feeds.parse import parse_feed_in_worker

    body = (FIXTURES / "wordpress_empty_guids.xml").read_bytes()
    direct = parse_feed(body, url="https://blog.example.com/feed/", content_type=None, now=NOW)
    worker = await parse_feed_in_worker(body, url="https://blog.example.com/feed/", content_type=None, now=NOW)
    assert worker == direct
    with pytest.raises(NotAFeed) as error:
        await parse_feed_in_worker((FIXTURES / "not_a_feed.html").read_bytes(), url="https://x.example/",
                                   content_type="text/html")
    assert error.value.message == "not a feed: the server sent an HTML page (text/html)"


def test_feed_errors_survive_pickling() -> None:
    import pickle

    from bot.feeds.errors import FeedRetryLater

    original = FeedRetryLater("x answered HTTP 429", status=429, retry_after_seconds=30.0)
    copy = pickle.loads(pickle.dumps(original))
    assert (type(copy), copy.message, copy.status, copy.retry_after_seconds) == (FeedRetryLater, original.message,
                                                                                  429, 30.0)


def test_a_spawned_worker_pool_parses_a_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows and macOS start workers by spawning a fresh interpreter (no fork): the pool's
    initializer and the parse call must work there, and the initializer must not need os.nice."""
    import functools
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from bot.feeds import parse as parse_module

    monkeypatch.delattr(os, "nice", raising=False)
    parse_module._lower_priority()  # as on Windows: nothing to call, nothing raised
    monkeypatch.undo()
    body = (FIXTURES / "wordpress_empty_guids.xml").read_bytes()
    call = functools.partial(parse_feed, body, url="https://blog.example.com/feed/", content_type=None, now=NOW)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=parse_module._lower_priority) as pool:
        assert pool.submit(call).result(timeout=120) == call()
