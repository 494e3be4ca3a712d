"""The real-world corpus in ../shared/corpus/feeds/ (skipped when absent): every document parses
without an exception, and a dozen chosen ones give exact counts, titles and links."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bot.feeds.errors import FeedError, FeedSyntaxError, NotAFeed, UnsafeFeed
from bot.feeds.parse import parse_feed
from tests.feeds_support import CORPUS_FEEDS

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not CORPUS_FEEDS.is_dir(), reason="../shared/corpus/feeds is not present")


def corpus_files() -> list[str]:
    if not CORPUS_FEEDS.is_dir():
        return []
    return sorted(
        str(path.relative_to(CORPUS_FEEDS)) for path in CORPUS_FEEDS.rglob("*")
        if path.is_file() and not path.name.startswith("LICENSE")
    )


def parse_corpus(name: str, url: str = "https://corpus.example/feed"):
    return parse_feed((CORPUS_FEEDS / name).read_bytes(), url=url, content_type=None, now=NOW)


def test_every_corpus_document_parses_or_gives_a_specific_error() -> None:
    names = corpus_files()
    assert len(names) > 100
    failures: list[str] = []
    for name in names:
        started = time.perf_counter()
        try:
            feed = parse_corpus(name)
        except FeedError as error:
            assert error.message, name
            continue
        except Exception as error:  # noqa: BLE001 - collected and reported below
            failures.append(f"{name}: {type(error).__name__}: {error}")
            continue
        assert time.perf_counter() - started < 10, name
        for entry in feed.entries:
            assert entry.identity, name
            assert entry.link.startswith(("http://", "https://")), name
            assert entry.title, name
            assert len(entry.summary) <= 350, name
            assert entry.published.tzinfo is not None, name
    assert failures == []


@pytest.mark.parametrize(
    ("name", "url", "count", "identity_rule", "first", "last"),
    [
        # WordPress with empty guids: identity falls back to the canonical link.
        ("wordpress/boston-com_wp6.9.1_empty-guids.xml", "https://www.boston.com/feed/", 10, "link",
         ("Obama shuts down alien buzz and says there’s no evidence they’ve made contact",
          "https://www.boston.com/news/politics/2026/02/16/obama-shuts-down-alien-buzz-and-says-theres-no-evidence-theyve-made-contact/"),
         ("US Olympians speaking up about politics at home face online backlash — including from Trump",
          "https://www.boston.com/sports/politics/2026/02/09/us-olympians-politics-online-backlash-trump/")),
        # Atom whose entry links are root-relative with no xml:base: resolved against the feed URL.
        ("atom/tpm_talkingpointsmemo_2017.atom", "https://talkingpointsmemo.com/feed/all", 20, "guid",
         ("Hannity Announces Fox Has Hired Sebastian Gorka As NatSec Strategist",
          "https://talkingpointsmemo.com/livewire/hannity-announces-fox-hired-sebastian-gorka-national-security-strategist"),
         ("GOP Rep. Dave Brat: Virginia GOP Didn't 'Nationalize' Election Enough",
          "https://talkingpointsmemo.com/livewire/dave-brat-virginia-republicans-nationalize-election")),
        ("atom/intertwingly_sam-ruby_2012.atom", "http://intertwingly.net/blog/index.atom", 20, "guid",
         ("Inhibiting Suspend", "http://intertwingly.net/blog/2012/07/16/Inhibiting-Suspend"),
         ("Default to Incognito", "http://intertwingly.net/blog/2012/02/04/Default-to-Incognito")),
        ("rss/hugo_kopias_relative-links.xml", "https://kopiascsaba.hu/index.xml", 13, "guid",
         ("Teaching Elderly People to Use Android - Lessons Learned",
          "https://kopiascsaba.hu/blog/teaching-elderly-people-to-use-android/"),
         ("Remembering the bash if statement", "https://kopiascsaba.hu/blog/1-remembering-the-bash-if-statement/")),
        # JSON Feed 1.1 and 1.0.
        ("jsonfeed/daringfireball_v1.1_authors.json", "https://daringfireball.net/feeds/json", 48, "guid",
         ("MailTrackerBlocker for Apple Mail on MacOS", "https://daringfireball.net/linked/2021/02/26/mailtrackerblocker"),
         ("★ My 2020 Apple Report Card", "https://daringfireball.net/2021/01/my_2020_apple_report_card")),
        ("jsonfeed/timetable-podcast_v1_no-feed_url.json", "https://timetable.fm/feed.json", 45, "guid",
         ("Episode 45: Launch week", "http://timetable.manton.org/2017/04/episode-45-launch-week/"),
         ("Episode 1: Hello", "http://timetable.manton.org/2016/01/episode-1-hello/")),
        # RDF (RSS 1.0).
        ("rdf/deutsche-welle_141-items.rdf", "https://rss.dw.com/rdf/rss-en-all", 141, "guid",
         ("France arrests nine in right-wing activist's death",
          "https://www.dw.com/en/france-arrests-nine-in-right-wing-activist-s-death/a-75995188?maca=en-rss-en-all-1573-rdf"),
         ("How bringing back a humble algae to Arctic waters makes all the difference",
          "https://www.dw.com/en/how-bringing-back-a-humble-algae-to-arctic-waters-makes-all-the-difference/a-75182003?maca=en-rss-en-all-1573-rdf")),
        # WordPress with a Cloudflare <script> after </rss>: bozo, but every item is read (utm_* gone).
        ("broken/kroy-io_wp5.8_cloudflare-script-after-rss.xml", "https://blog.kroy.io/feed/", 10, "guid",
         ("VyOS and Mikrotik – VLAN-a-rama", "https://blog.kroy.io/2021/06/29/vyos-and-mikrotik-vlan-a-rama/"),
         ("The WYSE 5070, a perfect little VyOS device",
          "https://blog.kroy.io/2019/12/08/the-wyse-5070-a-perfect-little-vyos-device/")),
        # Every <item> has a stray empty <item/> child: 10 posts, not 20.
        ("rss/illegally-nested_EST_feedburner.xml", "http://feeds.pcmag.com/Rss.aspx/SectionArticles?sectionId=28026",
         10, "link",
         ("My Professional Armchair Analysis of CES",
          "http://feedproxy.google.com/~r/ziffdavis/pcmag/dvorak/~3/0O-eUfOYo94/0,2817,2525649,00.asp"),
         ("Is iPhone X Apple's Vista?",
          "http://feedproxy.google.com/~r/ziffdavis/pcmag/dvorak/~3/srg3z1A6poQ/0,2817,2523452,00.asp")),
        # No guid at all.
        ("rss/hackernews_official_no-guid.xml", "https://news.ycombinator.com/rss", 30, "link",
         ("Show HN: MetricFlow – open-source metric framework", "https://github.com/transform-data/metricflow"),
         ("Wolfenstein 3D's winding journey from pitch to release",
          "https://www.gamedeveloper.com/gdc2022/wolfenstein-3d-postmortem")),
    ],
)
def test_chosen_corpus_feeds(name: str, url: str, count: int, identity_rule: str,
                             first: tuple[str, str], last: tuple[str, str]) -> None:
    feed = parse_corpus(name, url)
    assert len(feed.entries) == count
    assert {entry.identity.split(":", 1)[0] for entry in feed.entries} == {identity_rule}
    assert (feed.entries[0].title, feed.entries[0].link) == first
    assert (feed.entries[-1].title, feed.entries[-1].link) == last
    assert all("utm_" not in entry.link for entry in feed.entries)


def test_scripting_news_untitled_items_fall_back_to_their_text_and_keep_their_anchors() -> None:
    feed = parse_corpus("rss/scripting-news_2017_39-of-50-untitled.rss", "http://scripting.com/rss.xml")
    assert len(feed.entries) == 50
    assert feed.entries[0].title == "This is the human side of Health care is socialist."
    # Sorted newest first by pubDate (19:40 beats the 12:20 item listed before it).
    assert feed.entries[0].link == "http://scripting.com/2017/06/26.html#a030658"
    assert "Untitled" not in {entry.title for entry in feed.entries}
    # Two guids repeat in this document, so identities are links; 48 distinct posts.
    assert len({entry.link for entry in feed.entries}) == 48


@pytest.mark.parametrize(
    "name",
    [
        "broken/security_billion-laughs.xml",
        "broken/security_cyclic-entity.xml",
        "broken/security_external-entity-xxe.xml",
        "broken/security_quadratic-blowup.xml",
        "broken/security_rdf-doctype-parameter-entity.xml",
    ],
)
def test_corpus_xml_bombs_are_refused_in_under_two_seconds(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeFeed):
        parse_corpus(name)
    assert time.perf_counter() - started < 2


def test_corpus_documents_that_are_not_feeds() -> None:
    with pytest.raises(NotAFeed, match=r"^not a feed: the server sent an HTML page \(text/html\)$"):
        parse_feed((CORPUS_FEEDS / "broken/not-a-feed.html").read_bytes(), url="https://x.example/",
                   content_type="text/html; charset=UTF-8")
    with pytest.raises(NotAFeed, match="JSON that is not a JSON Feed"):
        parse_corpus("broken/scripting-news_rss-as-json_not-jsonfeed.json")
    with pytest.raises(FeedSyntaxError, match=r"^JSON error at line \d+: "):
        parse_corpus("broken/allthis_truncated.json")
    with pytest.raises(FeedSyntaxError, match=r"^XML error at line \d+: no element found"):
        parse_corpus("feedparser/illformed/rss_empty_document.xml")


def test_corpus_encodings_are_decoded() -> None:
    windows_1251 = parse_corpus("rss/oren-ru_windows-1251.xml")
    assert windows_1251.title.startswith("Новости Оренбурга")
    gzipped = parse_corpus("broken/gzip-body-without-content-encoding.xml")
    assert len(gzipped.entries) == 10 and gzipped.title == windows_1251.title
