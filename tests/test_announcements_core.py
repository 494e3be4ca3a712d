"""Core announcement logic without Discord: the embed and its limits, forum tags, the per-cycle
choice, the storage transitions, and the state machine's handling of passing failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.announce.embed import (
    AUTHOR_LIMIT,
    DESCRIPTION_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOOTER_LIMIT,
    TITLE_LIMIT,
    TOTAL_LIMIT,
    AnnouncementEmbed,
    build_embed,
)
from bot.announce.machine import Announcer, ChannelInfo, DiscordError, ThreadInfo
from bot.announce.plan import choose_for_cycle
from bot.announce.retry import RetrySchedule
from bot.announce.tags import ForumTag, match_forum_tags
from bot.model.posts import Candidate, PostContent, parse_categories
from bot.storage import announcements as store
from bot.storage.db import Database
from tests.announcements_support import announcement, later, queue_post
from tests.conftest import BOTH_ENGINES
from tests.feeds_support import FakeClock

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def post(**changes: object) -> PostContent:
    values: dict[str, object] = {
        "title": "A title", "canonical_url": "https://blog.example/a", "author": "Ada", "summary": "Summary.",
        "published_at": WHEN, "image_url": None, "categories": (), "feed_title": "Blog",
    }
    values.update(changes)
    return PostContent(**values)  # type: ignore[arg-type]


def assert_within_limits(embed: AnnouncementEmbed) -> None:
    data = embed.to_dict()
    assert 0 < len(data["title"]) <= TITLE_LIMIT
    assert len(data.get("description", "")) <= DESCRIPTION_LIMIT
    assert len(data.get("author", {}).get("name", "")) <= AUTHOR_LIMIT
    assert len(data.get("footer", {}).get("text", "")) <= FOOTER_LIMIT
    assert len(data.get("fields", [])) <= 25
    for item in data.get("fields", []):
        assert 0 < len(item["name"]) <= FIELD_NAME_LIMIT
        assert 0 < len(item["value"]) <= FIELD_VALUE_LIMIT
    assert embed.total_length() <= TOTAL_LIMIT
    for key in ("url",):
        assert data.get(key) is None or data[key].startswith(("http://", "https://"))
    if "image" in data:
        assert data["image"]["url"].startswith(("http://", "https://"))


def test_embed_shows_the_post() -> None:
    embed = build_embed(post(image_url="https://blog.example/i.png", categories=("Python", "python", "Web")))
    data = embed.to_dict()
    assert data["title"] == "A title" and data["url"] == "https://blog.example/a"
    assert data["author"] == {"name": "Ada"} and data["footer"] == {"text": "Blog"}
    assert data["image"] == {"url": "https://blog.example/i.png"}
    assert data["fields"] == [
        {"name": "Published", "value": f"<t:{int(WHEN.timestamp())}:f>", "inline": True},
        {"name": "Categories", "value": "Python, Web", "inline": True},
    ]
    assert data["timestamp"] == WHEN.isoformat()


def test_embed_drops_what_discord_would_refuse_and_neutralises_mentions() -> None:
    embed = build_embed(post(canonical_url="javascript:alert(1)", image_url="data:image/png;base64,AA",
                             author=None, feed_title=None, title="  \n ", summary="Hey @everyone <@&12345>",
                             categories=("<@&1>", "*bold*")))
    data = embed.to_dict()
    assert "url" not in data and "image" not in data and "author" not in data and "footer" not in data
    assert data["title"] == "Untitled"
    assert "@everyone" not in data["description"] and "<@&12345>" not in data["description"]
    assert data["fields"][1]["value"] == "\\<@\u200b&1>, \\*bold\\*"


def test_long_texts_are_cut_at_words() -> None:
    title = " ".join(["alpha"] * 60)  # 359 characters
    embed = build_embed(post(title=title, summary=" ".join(["beta"] * 1000), author="x " * 200,
                             categories=tuple(f"category{n}" for n in range(200))))
    assert len(embed.title) <= TITLE_LIMIT and embed.title.endswith("alpha…")
    assert embed.description.endswith("beta…") and len(embed.description) <= DESCRIPTION_LIMIT
    assert embed.fields[1].value.endswith("…") and len(embed.fields[1].value) <= FIELD_VALUE_LIMIT
    assert_within_limits(embed)


@settings(max_examples=300, deadline=None)
@given(title=st.text(), summary=st.text(max_size=9000), author=st.none() | st.text(max_size=600),
       feed_title=st.none() | st.text(max_size=3000), categories=st.lists(st.text(max_size=300), max_size=40),
       url=st.text(max_size=50), image=st.none() | st.text(max_size=50),
       published=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))
def test_any_strings_give_an_embed_within_every_limit(title: str, summary: str, author: str | None,
                                                      feed_title: str | None, categories: list[str], url: str,
                                                      image: str | None, published: datetime) -> None:
    assert_within_limits(build_embed(PostContent(title, url, author, summary, published, image, tuple(categories),
                                                 feed_title)))


def test_parse_categories_tolerates_bad_json() -> None:
    assert parse_categories('["a", "", 3, null, {"x": 1}]') == ("a", "3")
    assert parse_categories("not json") == () and parse_categories('{"a": 1}') == () and parse_categories(None) == ()


def test_forum_tags_match_case_insensitively_and_required_tag_falls_back() -> None:
    tags = (ForumTag(1, "Python"), ForumTag(2, "Discord  Bots"), ForumTag(3, "News"))
    assert match_forum_tags(["python", "discord bots", "Cooking"], tags, requires_tag=False) == (1, 2)
    assert match_forum_tags(["Cooking"], tags, requires_tag=False) == ()
    assert match_forum_tags(["Cooking"], tags, requires_tag=True) == (1,)
    assert match_forum_tags([], (), requires_tag=True) == ()
    many = tuple(ForumTag(n, f"t{n}") for n in range(10))
    assert match_forum_tags([f"T{n}" for n in range(10)], many, requires_tag=False) == (0, 1, 2, 3, 4)


def test_choose_for_cycle_limits_each_channel_oldest_first() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    candidates = [Candidate(100 + n, 1, 10, "queued", start + timedelta(minutes=(n * 7) % 12)) for n in range(12)]
    candidates += [Candidate(200 + n, 1, 20, "queued", start + timedelta(minutes=n)) for n in range(3)]
    candidates += [Candidate(300, 1, 10, "sent", start), Candidate(301, 1, 10, "pending", start + timedelta(hours=1))]
    candidates += [Candidate(400 + n, 2, 30, "queued", start + timedelta(minutes=n)) for n in range(5)]
    chosen = choose_for_cycle(candidates, lambda guild: 5 if guild == 1 else 2)
    channel_10 = [c for c in chosen if c.channel_id == 10]
    assert [c.announcement_id for c in channel_10][:2] == [300, 301]  # interrupted work first
    assert len([c for c in channel_10 if c.state != "sent"]) == 5  # sent rows use no budget
    queued_10 = [c for c in channel_10 if c.state == "queued"]
    assert [c.published_at for c in queued_10] == sorted(c.published_at for c in candidates
                                                         if c.channel_id == 10 and c.state == "queued")[:4]
    assert len([c for c in chosen if c.channel_id == 20]) == 3
    assert [c.announcement_id for c in chosen if c.channel_id == 30] == [400, 401]


# -- storage ----------------------------------------------------------------------------------------

async def test_storage_transitions_and_failed_list(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "core.db")
    try:
        first = await queue_post(database, 1, 10, title="First", published_at=later(0), categories=["x"])
        second = await queue_post(database, 1, 10, title="Second", published_at=later(1))
        assert await store.begin_attempt(database, first.announcement_id) == ("queued", 1)
        assert await store.begin_attempt(database, first.announcement_id) == ("pending", 2)
        work = await store.load_work(database, first.announcement_id)
        assert work is not None and work.state == "pending" and work.post.categories == ("x",)
        await store.record_sent(database, first.announcement_id, 555)
        work = await store.load_work(database, first.announcement_id)
        assert work is not None
        await store.record_threaded(database, work, message_id=555, thread_id=555, parent_channel_id=10, name="First")
        await store.record_threaded(database, work, message_id=555, thread_id=555, parent_channel_id=10, name="First")
        assert await store.begin_attempt(database, first.announcement_id) is None  # done: never again
        rows = await database.fetch_all("SELECT * FROM threads")
        assert [(r["thread_id"], r["post_id"], r["starter_message_id"]) for r in rows] == [(555, first.post_id, 555)]

        await store.record_failed(database, second.announcement_id, "could not send", 50013)
        [failed] = await store.failed_announcements(database, 1)
        assert (failed.title, failed.error, failed.error_code) == ("Second", "could not send", 50013)
        assert [f.id for f in await store.unreported_failures(database)] == [second.announcement_id]
        await store.mark_reported(database, [second.announcement_id])
        assert await store.unreported_failures(database) == []
        assert await store.failed_announcements(database, 2) == []
        assert await store.retry_failed(database, 1) == 1
        assert (await announcement(database, second.announcement_id))["state"] == "pending"

        # needs_edit is cleared only if the post did not change again meanwhile.
        await database.write(lambda c: c.execute("UPDATE announcements SET needs_edit = 1 WHERE id = ?",
                                                 (first.announcement_id,)))
        assert not await store.finish_edit(database, first.announcement_id, "stale-hash")
        [due] = await store.edits_due(database)
        assert await store.finish_edit(database, first.announcement_id, due.content_hash)
        assert await store.edits_due(database) == []
    finally:
        await database.close()


async def test_cycle_candidates_bounded_per_channel(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "core.db")
    try:
        for n in range(60):
            await queue_post(database, 1, 10, title=f"P{n}", published_at=later(60 - n))
        await queue_post(database, 1, 10, title="Skipped", state="skipped")
        candidates = await store.cycle_candidates(database)
        assert len(candidates) == store.MAX_PER_CHANNEL
        assert min(c.published_at for c in candidates) == later(1)
    finally:
        await database.close()


# -- the state machine over a scripted Discord ------------------------------------------------------

@dataclass
class ScriptedDiscord:
    """A minimal in-memory Discord for the core state machine (the emulator tests cover discord.py)."""

    messages: dict[int, str] = field(default_factory=dict)  # message id -> embed url
    threads: dict[int, ThreadInfo] = field(default_factory=dict)
    invitations: list[int] = field(default_factory=list)
    fail_sends: int = 0
    lose_response: bool = False
    lookups: int = 0
    next_id: int = 1000

    async def channel(self, channel_id: int) -> ChannelInfo:
        return ChannelInfo(channel_id, "text")

    async def find_announcement(self, channel_id: int, url: str) -> int | None:
        self.lookups += 1
        return next((mid for mid, link in self.messages.items() if link == url), None)

    async def send_announcement(self, channel_id: int, embed: AnnouncementEmbed, ping_role_id: int | None) -> int:
        if self.fail_sends:
            self.fail_sends -= 1
            raise DiscordError("Service Unavailable", status=503, code=None, permanent=False)
        self.next_id += 1
        assert embed.url is not None
        self.messages[self.next_id] = embed.url
        if self.lose_response:  # sent, but the answer never arrived
            self.lose_response = False
            raise DiscordError("network error: ClientOSError", status=None, code=None, permanent=False)
        return self.next_id

    async def existing_thread(self, channel_id: int, message_id: int) -> ThreadInfo | None:
        return self.threads.get(message_id)

    async def create_thread(self, channel_id: int, message_id: int, name: str, auto_archive_minutes: int) -> ThreadInfo:
        self.threads[message_id] = ThreadInfo(message_id, name)
        return self.threads[message_id]

    async def find_forum_post(self, forum_id: int, url: str) -> int | None:
        raise AssertionError("no forum here")

    async def create_forum_post(self, *args: object) -> int:
        raise AssertionError("no forum here")

    async def own_messages_in_thread(self, thread_id: int) -> int:
        return self.invitations.count(thread_id)

    async def post_in_thread(self, thread_id: int, text: str) -> None:
        self.invitations.append(thread_id)

    async def edit_announcement(self, channel_id: int, message_id: int, embed: AnnouncementEmbed) -> None:
        return None

    async def thread(self, thread_id: int) -> ThreadInfo | None:
        return self.threads.get(thread_id)

    async def update_thread(self, thread_id: int, *, name: str | None = None, archived: bool | None = None) -> None:
        return None


async def test_passing_failures_back_off_and_give_up_only_after_a_day(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "core.db")
    try:
        clock = FakeClock()
        discord = ScriptedDiscord(fail_sends=2)
        announcer = Announcer(database, discord, per_cycle=5, archive_minutes=10080, clock=clock)
        post_row = await queue_post(database, 1, 10, title="Flaky")
        assert (await announcer.run_cycle()).retry == [post_row.announcement_id]
        row = await announcement(database, post_row.announcement_id)
        assert row["state"] == "pending" and "HTTP 503" in row["error"]
        assert (await announcer.run_cycle()).retry == []  # waiting out its minute
        clock.advance(60)
        assert (await announcer.run_cycle()).retry == [post_row.announcement_id]
        clock.advance(119)
        assert (await announcer.run_cycle()).announced == []  # the wait doubled
        clock.advance(1)
        report = await announcer.run_cycle()
        assert report.announced == [post_row.announcement_id] and len(discord.messages) == 1
        row = await announcement(database, post_row.announcement_id)
        assert row["next_attempt_at"] is None and row["retrying_since"] is None

        # Discord down for good: tried with waits of 1, 2, 4 ... 60 minutes, for a day, then failed.
        hopeless = await queue_post(database, 1, 10, title="Never")
        discord.fail_sends = 1000
        tries, started = 0, clock.now
        while (await announcement(database, hopeless.announcement_id))["state"] != "failed":
            await announcer.run_cycle()
            tries = 1000 - discord.fail_sends
            clock.advance(60)
            assert clock.now - started < timedelta(hours=26)
        row = await announcement(database, hopeless.announcement_id)
        assert clock.now - started >= timedelta(hours=24)
        assert row["error"].startswith(f"gave up after {tries} attempts over 2")
        assert 25 <= tries <= 35  # not one a minute: about 7 to reach the hour, then hourly
        await announcer.run_cycle()
        assert 1000 - discord.fail_sends == tries  # no further try
    finally:
        await database.close()


def test_retry_schedule_doubles_up_to_its_longest_wait() -> None:
    schedule = RetrySchedule()
    assert [schedule.delay(n) / timedelta(minutes=1) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert schedule.give_up_after >= timedelta(hours=24)


async def test_a_lost_send_response_is_found_in_history_not_sent_twice(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "core.db")
    try:
        discord = ScriptedDiscord(lose_response=True)
        announcer = Announcer(database, discord, per_cycle=5, archive_minutes=10080,
                              retry_schedule=RetrySchedule(first=timedelta(0)))
        post_row = await queue_post(database, 1, 10, title="Lost answer")
        assert (await announcer.run_cycle()).retry == [post_row.announcement_id]
        assert discord.lookups == 0  # the first try looks nowhere: nothing was ever sent
        assert (await announcer.run_cycle()).announced == [post_row.announcement_id]
        assert discord.lookups == 1 and len(discord.messages) == 1
        row = await announcement(database, post_row.announcement_id)
        assert row["message_id"] == next(iter(discord.messages)) and discord.invitations == [row["thread_id"]]
        assert row["state"] == "threaded"
    finally:
        await database.close()
