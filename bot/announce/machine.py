"""The crash-safe announcement state machine.

Every step is made durable before the next Discord call, and every Discord call that may have
happened before a crash is looked for before it is made again:

``queued`` -> ``pending`` (committed before the send) -> send -> ``sent`` (message id) -> thread ->
``threaded`` (thread id + ``threads`` row, one transaction) -> the invitation line. Resuming a ``pending`` row first looks
for this bot's message with the post's link in the channel's recent history; resuming a ``sent``
row first looks for the thread of that message (a thread started from a message has its id).
A forum post is its thread and its starter message at once: ``pending`` -> ``threaded``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar

from bot.announce.embed import AnnouncementEmbed, build_embed, one_line
from bot.announce.plan import choose_for_cycle
from bot.announce.retry import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from bot.announce.tags import ForumTag, match_forum_tags
from bot.model.posts import ChannelKind
from bot.render.text import cut_at_word, escape_discord_markdown, neutralise_mentions, thread_name
from bot.storage import announcements as store
from bot.storage.db import Database, utcnow

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Outcome = Literal["threaded", "failed", "retry", "done_elsewhere"]
AdminNotice = Callable[[int, int, str], Awaitable[None]]  # guild id, channel id, text

INVITE_LINE = "Talk about this post here: the messages of this thread are shown as comments on the blog."
# Discord error codes that mean the channel itself is unusable (so every queued post for it is too).
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
CHANNEL_CODES = frozenset({UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS})
# The guild has as many active threads as Discord allows (about 1,000): the thread is created once
# some are archived; the announcement waits, it does not fail.
MAX_ACTIVE_THREADS = 160006


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    kind: ChannelKind
    tags: tuple[ForumTag, ...] = ()
    requires_tag: bool = False


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    id: int
    name: str
    archived: bool = False
    locked: bool = False


class DiscordError(Exception):
    """A Discord call that did not succeed, as the cog saw it. ``permanent`` errors (4xx) are not
    retried; others (5xx, network, rate limits discord.py gave up on) are, with backoff. ``missing``
    names the permissions the bot lacks in the channel, when the cog could tell."""

    def __init__(self, text: str, *, status: int | None, code: int | None, permanent: bool,
                 missing: tuple[str, ...] = ()) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.code = code
        self.permanent = permanent
        self.missing = missing


class DiscordPort(Protocol):
    """What the state machine needs from Discord (the announcements cog implements it)."""

    async def channel(self, channel_id: int) -> ChannelInfo: ...

    async def find_announcement(self, channel_id: int, url: str) -> int | None:
        """This bot's message in the channel's recent history whose embed links to ``url``."""

    async def send_announcement(self, channel_id: int, embed: AnnouncementEmbed, ping_role_id: int | None) -> int:
        """Send the embed (pinging ``ping_role_id`` only); returns the message id."""

    async def existing_thread(self, channel_id: int, message_id: int) -> ThreadInfo | None: ...

    async def create_thread(self, channel_id: int, message_id: int, name: str,
                            auto_archive_minutes: int) -> ThreadInfo: ...

    async def find_forum_post(self, forum_id: int, url: str) -> int | None:
        """This bot's recent forum post whose starter embed links to ``url``; returns the thread id."""

    async def create_forum_post(self, forum_id: int, name: str, embed: AnnouncementEmbed, tag_ids: tuple[int, ...],
                                ping_role_id: int | None, auto_archive_minutes: int) -> int:
        """Create the post; returns its thread id (which is also its starter message id)."""

    async def own_messages_in_thread(self, thread_id: int) -> int:
        """How many of this bot's own messages the thread has, its starter message not counted."""

    async def post_in_thread(self, thread_id: int, text: str) -> None: ...

    async def edit_announcement(self, channel_id: int, message_id: int, embed: AnnouncementEmbed) -> None: ...

    async def thread(self, thread_id: int) -> ThreadInfo | None: ...

    async def update_thread(self, thread_id: int, *, name: str | None = None,
                            archived: bool | None = None) -> None: ...


@dataclass(slots=True)
class CycleReport:
    announced: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    edited: list[int] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)
    # The earliest moment a channel whose queued posts waited for the rate gets room again (None:
    # none waits, or the rate is per cycle only): the loop runs its next cycle then.
    room_at: datetime | None = None


def explain(error: DiscordError, step: str, channel_id: int | None = None) -> str:
    """A short reason an admin can act on, naming the channel and the missing permission."""
    doing = {"channel": "find the channel", "send": "send the announcement", "thread": "create the thread",
             "forum": "create the forum post", "invite": "post in the thread"}.get(step, step)
    where = f" <#{channel_id}>" if channel_id is not None else ""
    if error.code == UNKNOWN_CHANNEL or (step == "channel" and error.status == 404):
        return (f"could not {doing}: the channel{where} no longer exists (Discord error 10003); "
                "point the feed at another channel")
    if error.code == MISSING_ACCESS:
        return (f"could not {doing}: the bot cannot see the channel{where} (Discord error 50001); "
                "give it View Channel there")
    if error.code == MISSING_PERMISSIONS or (error.status == 403 and error.missing):
        needed = ("View Channel, Send Messages, Embed Links, Read Message History, Create Public Threads and "
                  "Send Messages in Threads" if step != "forum"
                  else "View Channel, Send Messages (Create Posts), Embed Links and Read Message History")
        lacking = f": it is missing {_and(error.missing)}" if error.missing else ""
        return (f"could not {doing}: the bot lacks a permission in the channel{where} (Discord error "
                f"{error.code or 50013}){lacking}; it needs {needed}")
    if error.code == MAX_ACTIVE_THREADS:
        return (f"could not {doing}: the server has as many active threads as Discord allows (Discord error "
                "160006); announcements wait until some threads are archived (archive old threads, or "
                "shorten `/settings thread-archive`)")
    if error.code == UNKNOWN_MESSAGE:
        return f"could not {doing}: the announcement message was deleted (Discord error 10008)"
    code = f" {error.code}" if error.code else ""
    status = f" (HTTP {error.status})" if error.status else ""
    return cut_at_word(f"could not {doing}: Discord error{code}{status}: {one_line(error.text)}", 500)


def _and(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class Announcer:
    """Runs announcement cycles over a :class:`DiscordPort`. ``retry_schedule`` says when an
    announcement that met a passing problem is tried again, and when it gives up."""

    def __init__(self, database: Database, port: DiscordPort, *, per_cycle: int, archive_minutes: int,
                 retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE,
                 flood_window: timedelta = timedelta(0), clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        # per_cycle is a rate: at most that many announcements per channel in any flood_window
        # (a sliding window, 10 minutes in production). Cycles run whenever posts are stored, so
        # new posts go out at once, yet a backlog drains at that rate and a flood is impossible.
        # A zero window makes it a limit per cycle only.
        self.flood_window = flood_window
        self.clock = clock
        self.port = port
        self.per_cycle = per_cycle
        self.archive_minutes = archive_minutes
        self.retry_schedule = retry_schedule
        self.on_thread_recorded: Callable[[int], None] | None = None
        # Tells a guild's admins in Discord what they must fix (the cog posts it); None: the log only.
        self.notify_admins: AdminNotice | None = None
        self._threads_full: set[int] = set()  # guilds at Discord's active thread limit
        self._told_threads_full: set[int] = set()  # ... whose admins were told since it was hit

    async def run_cycle(self) -> CycleReport:
        """Interrupted announcements first, then new ones per channel (oldest first) as far as the
        channel's rate allows; then the edits of updated posts; then failures are reported once."""
        report = CycleReport()
        overrides = await store.guild_overrides(self.database)
        archive = {guild: o.thread_auto_archive_minutes for guild, o in overrides.items()
                   if o.thread_auto_archive_minutes is not None}
        per_cycle = {guild: o.announcements_per_cycle for guild, o in overrides.items()
                     if o.announcements_per_cycle is not None}
        recent: dict[int, int] = {}
        if self.flood_window > timedelta(0):
            recent = {channel: sends.count for channel, sends in (
                await store.recent_announcements(self.database, self.clock() - self.flood_window)).items()}
        # While a guild is at Discord's active thread limit, its waiting threads go first and no new
        # message is sent there (it could get no thread).
        self._threads_full = await store.guilds_waiting_for_threads(self.database, MAX_ACTIVE_THREADS)
        self._told_threads_full &= self._threads_full
        candidates = await store.cycle_candidates(self.database, self.clock())
        chosen = choose_for_cycle(candidates, lambda guild: per_cycle.get(guild, self.per_cycle), recent)
        picked = {candidate.announcement_id for candidate in chosen}
        waiting = {candidate.channel_id for candidate in candidates
                   if candidate.state == "queued" and candidate.announcement_id not in picked}
        for candidate in chosen:
            if candidate.state != "sent" and candidate.guild_id in self._threads_full:
                continue
            try:
                outcome = await self.announce(candidate.announcement_id,
                                              archive.get(candidate.guild_id, self.archive_minutes))
            except Exception as error:  # a bug must not stop the other announcements or the loop
                log.exception("announcement %d failed unexpectedly; it is tried again later",
                              candidate.announcement_id)
                await self._unexpected(candidate.announcement_id, error)
                continue
            {"threaded": report.announced, "failed": report.failed, "retry": report.retry}.get(
                outcome, []).append(candidate.announcement_id)
        report.edited = await self.apply_edits()
        report.reported = await self.report_failures()
        report.room_at = await self._room_at(waiting)
        return report

    async def _room_at(self, waiting: set[int]) -> datetime | None:
        """When the first of the ``waiting`` channels (queued posts held back by the rate) gets
        room: the oldest announcement of its window leaves the window then."""
        if not waiting or self.flood_window <= timedelta(0):
            return None
        recent = await store.recent_announcements(self.database, self.clock() - self.flood_window)
        moments = [recent[channel].oldest + self.flood_window for channel in waiting if channel in recent]
        return min(moments, default=None)

    async def announce(self, announcement_id: int, archive_minutes: int | None = None) -> Outcome:
        """Take one announcement as far as it goes: to ``threaded``, ``failed``, or (after a passing
        problem) left in its state for the next cycle."""
        begun = await store.begin_attempt(self.database, announcement_id)
        if begun is None:
            return "done_elsewhere"
        before, attempts = begun
        work = await store.load_work(self.database, announcement_id)
        if work is None:
            return "done_elsewhere"
        step = "channel"
        try:
            channel = await self.port.channel(work.channel_id)
            archive = archive_minutes or self.archive_minutes
            if channel.kind == "forum":
                step = "forum"
                await self._announce_in_forum(work, channel, resumed=before != "queued", archive=archive)
            else:
                await self._announce_in_channel(work, channel, before=before, archive=archive)
            return "threaded"
        except _StepFailed as failed:
            step, error = failed.step, failed.error
        except DiscordError as error_:
            error = error_
        return await self._failed(work, step, error, attempts)

    async def _announce_in_channel(self, work: store.AnnouncementWork, channel: ChannelInfo, *, before: str,
                                   archive: int) -> None:
        embed = build_embed(work.post)
        message_id = work.message_id
        just_sent = False
        if work.state == "pending" or message_id is None:
            found = None
            if before != "queued" and embed.url:
                found = await _at("send", self.port.find_announcement(channel.id, embed.url))
            if found is None:
                message_id = await _at("send", self.port.send_announcement(channel.id, embed, work.ping_role_id))
                just_sent = True
            else:
                message_id = found
                log.info("announcement %d: reusing message %d found in channel %d", work.id, found, channel.id)
            await store.record_sent(self.database, work.id, message_id)
        name = thread_name(work.post.title)
        # A message sent a moment ago has no thread yet; one found or resumed may have.
        thread = None if just_sent else await _at("thread", self.port.existing_thread(channel.id, message_id))
        created = thread is None
        if thread is None:
            thread = await _at("thread", self.port.create_thread(channel.id, message_id, name, archive))
        else:
            log.info("announcement %d: reusing thread %d", work.id, thread.id)
        # The thread is recorded (and the capture told) before anything is posted in it, so its first
        # replies are comments; a crash before the invitation costs only that courtesy line.
        await store.record_threaded(self.database, work, message_id=message_id, thread_id=thread.id,
                                    parent_channel_id=channel.id, name=thread.name)
        self._tracked(thread.id)
        await self._invite(thread.id, fresh=created and just_sent)

    async def _announce_in_forum(self, work: store.AnnouncementWork, forum: ChannelInfo, *, resumed: bool,
                                 archive: int) -> None:
        embed = build_embed(work.post)
        name = thread_name(work.post.title)
        thread_id = None
        if resumed and embed.url:
            thread_id = await _at("forum", self.port.find_forum_post(forum.id, embed.url))
        fresh = thread_id is None
        if thread_id is None:
            tags = match_forum_tags(work.post.categories, forum.tags, requires_tag=forum.requires_tag)
            thread_id = await _at("forum", self.port.create_forum_post(
                forum.id, name, embed, tags, work.ping_role_id, archive))
        else:
            log.info("announcement %d: reusing forum post %d", work.id, thread_id)
        await store.record_threaded(self.database, work, message_id=thread_id, thread_id=thread_id,
                                    parent_channel_id=forum.id, name=name)
        self._tracked(thread_id)
        await self._invite(thread_id, fresh=fresh)

    async def _invite(self, thread_id: int, *, fresh: bool) -> None:
        # A thread found rather than created this attempt is checked first, so a thread resumed after
        # a restart never gets it twice. The invitation is a courtesy: failing to post
        # it never fails the announcement.
        try:
            if fresh or await self.port.own_messages_in_thread(thread_id) == 0:
                await self.port.post_in_thread(thread_id, INVITE_LINE)
        except DiscordError as error:
            log.warning("thread %d: could not post the invitation line: %s", thread_id, explain(error, "invite"))

    def _tracked(self, thread_id: int) -> None:
        if self.on_thread_recorded is not None:
            self.on_thread_recorded(thread_id)

    async def _failed(self, work: store.AnnouncementWork, step: str, error: DiscordError, attempts: int) -> Outcome:
        reason = explain(error, step, work.channel_id)
        if error.code == MAX_ACTIVE_THREADS:
            await self._wait_for_threads(work, reason, attempts)
            return "retry"
        if not error.permanent:
            return await self._retry_later(work.id, reason, error.code, attempts)
        await store.record_failed(self.database, work.id, reason, error.code)
        if error.code in CHANNEL_CODES and step in ("channel", "send", "thread", "forum"):
            others = await store.fail_queued_in_channel(self.database, work.channel_id, reason, error.code)
            if others:
                log.info("channel %d unusable: %d more queued announcements failed with it", work.channel_id,
                         others)
        return "failed"

    async def _retry_later(self, announcement_id: int, reason: str, code: int | None, attempts: int) -> Outcome:
        """Backoff for a passing problem; failed for good once it has lasted ``give_up_after``."""
        now = self.clock()
        delay = self.retry_schedule.delay(attempts)
        since = await store.record_retry_later(self.database, announcement_id, reason, code, failed_at=now,
                                               next_attempt_at=now + delay)
        if now - since >= self.retry_schedule.give_up_after:
            hours = (now - since) / timedelta(hours=1)
            await store.record_failed(self.database, announcement_id, cut_at_word(
                f"gave up after {attempts} attempts over {hours:.1f} hours; {reason}", 600), code)
            return "failed"
        log.warning("announcement %d: %s; trying again in %s", announcement_id, reason, delay)
        return "retry"

    async def _unexpected(self, announcement_id: int, error: Exception) -> None:
        row = await store.load_work(self.database, announcement_id)
        if row is not None and row.state in ("pending", "sent"):
            reason = cut_at_word(f"unexpected error: {type(error).__name__}: {one_line(str(error))}", 500)
            await self._retry_later(announcement_id, reason, None, max(row.attempts, 1))

    async def _wait_for_threads(self, work: store.AnnouncementWork, reason: str, attempts: int) -> None:
        """The guild is at its active thread limit: the message stays, its thread is created later;
        the admins are told once (until the limit is hit again after a thread could be created)."""
        now = self.clock()
        self._threads_full.add(work.guild_id)
        await store.record_retry_later(self.database, work.id, reason, MAX_ACTIVE_THREADS, failed_at=now,
                                       next_attempt_at=now + self.retry_schedule.delay(attempts), counts=False)
        if work.guild_id in self._told_threads_full:
            return
        self._told_threads_full.add(work.guild_id)
        log.warning("guild %d: announcement %d waits for its thread: %s", work.guild_id, work.id, reason)
        await self._notify(work.guild_id, work.channel_id,
                           f"The announcement of **{_title(work.post.title)}** has no thread yet: {reason}. "
                           "Nothing is lost: the thread is created, and the next posts announced, as soon as "
                           "Discord allows it.")

    async def _notify(self, guild_id: int, channel_id: int, text: str) -> None:
        if self.notify_admins is None:
            return
        try:
            await self.notify_admins(guild_id, channel_id, cut_at_word(text, 2000))
        except Exception:  # telling the admins must never stop the announcements
            log.exception("guild %d: could not post the admin notice", guild_id)

    async def apply_edits(self) -> list[int]:
        """Edit the embeds of posts that changed; rename their threads when the title changed."""
        edited: list[int] = []
        for work in await store.edits_due(self.database):
            try:
                if await self._edit(work):
                    edited.append(work.id)
            except DiscordError as error:
                if error.permanent:
                    log.warning("announcement %d: could not apply the post's update (%s); leaving it as is",
                                work.id, explain(error, "edit"))
                    await store.finish_edit(self.database, work.id, work.content_hash)
                else:
                    log.warning("announcement %d: update not applied yet (%s)", work.id, explain(error, "edit"))
            except Exception:  # one bad row must not stop the other edits
                log.exception("announcement %d: applying the post's update failed", work.id)
        return edited

    async def _edit(self, work: store.AnnouncementWork) -> bool:
        assert work.thread_id is not None and work.message_id is not None
        channel = await self.port.channel(work.channel_id)
        thread = await self.port.thread(work.thread_id)
        if thread is None:
            log.info("announcement %d: its thread is gone; the update is not shown", work.id)
            await store.finish_edit(self.database, work.id, work.content_hash)
            return False
        embed = build_embed(work.post)
        if thread.locked:
            # Moderators locked the discussion: the thread (and a forum post's starter, which lives in
            # it) is left alone; an announcement message in the parent channel is still corrected.
            log.info("announcement %d: thread %d is locked; it is left as it is", work.id, thread.id)
            if channel.kind != "forum":
                await self.port.edit_announcement(channel.id, work.message_id, embed)
            await store.finish_edit(self.database, work.id, work.content_hash)
            return channel.kind != "forum"
        name = thread_name(work.post.title)
        rename = name != thread.name
        # An archived thread is unarchived in the same request that renames it (Discord refuses to
        # rename it otherwise), and before its forum starter message is edited.
        unarchive = thread.archived and (rename or channel.kind == "forum")
        if rename or unarchive:
            await self.port.update_thread(thread.id, name=name if rename else None,
                                          archived=False if unarchive else None)
        where = work.thread_id if channel.kind == "forum" else channel.id
        await self.port.edit_announcement(where, work.message_id, embed)
        if rename:
            title = neutralise_mentions(escape_discord_markdown(one_line(work.post.title)))
            await self.port.post_in_thread(thread.id, cut_at_word(f"The post was renamed: **{title}**", 2000))
            await store.record_thread_renamed(self.database, thread.id, name)
        await store.finish_edit(self.database, work.id, work.content_hash)
        return True

    async def report_failures(self) -> list[int]:
        """Log every new failure once (``/feed list`` shows them from the table)."""
        failures = await store.unreported_failures(self.database)
        by_channel: dict[tuple[int, str], list[store.FailedAnnouncement]] = {}
        for failure in failures:
            by_channel.setdefault((failure.channel_id, failure.error), []).append(failure)
        for (channel_id, reason), group in by_channel.items():
            titles = ", ".join(repr(f.title[:80]) for f in group[:3]) + (" and more" if len(group) > 3 else "")
            log.warning("guild %d channel %d: %d announcement(s) failed (%s): %s", group[0].guild_id, channel_id,
                        len(group), titles, reason)
            named = ", ".join(f"**{_title(f.title[:80])}**" for f in group[:3]) + (
                f" and {len(group) - 3} more" if len(group) > 3 else "")
            posts = "post" if len(group) == 1 else f"{len(group)} posts"
            await self._notify(group[0].guild_id, channel_id,
                               f"Could not announce the {posts} {named} in <#{channel_id}>: {reason}. "
                               "Once that is fixed, `/feed retry` announces them (nothing is posted twice).")
        if failures:
            await store.mark_reported(self.database, [f.id for f in failures])
        return [f.id for f in failures]


def _title(title: str) -> str:
    return neutralise_mentions(escape_discord_markdown(one_line(title)))[:200]


class _StepFailed(Exception):
    def __init__(self, step: str, error: DiscordError) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error


async def _at(step: str, call: Awaitable[_T]) -> _T:
    """Await a Discord call, naming the step in the failure (for the admins' reason)."""
    try:
        return await call
    except DiscordError as error:
        raise _StepFailed(step, error) from error
