"""Events in, cheap queued writes out; catch-up and reconcile against the thread's history.

:class:`DiscussionCapture` is what the cog talks to. Live events are taken in the order Discord
sent them (``receive``) and handled one at a time by one task, so the writes for a message reach
the writer in the order they happened, whatever a handler awaits: an edit 1 ms after the message
keeps the original as a revision, a delete right after it leaves a tombstone.

The hot path (a new message) costs a set lookup, the clean-text rendering and a place in the next
group of new comments: never a read, never a commit of its own. Whether the author opted out is
checked inside the write, so an opt-out and a message arriving together cannot race.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from bot.discussions.capture import Verdict, clean_text, verdict
from bot.model.discord_ids import snowflake_floor
from bot.model.messages import (
    IncomingMessage,
    MessageDeletion,
    ReactionChange,
    ThreadChange,
    ThreadState,
)
from bot.storage import comments as store
from bot.storage.db import Database, WriteOp, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTORY_PAGE_SIZE = 100  # messages per page of channel history: the most Discord gives
MISS_RECHECK_SECONDS = 5.0  # how long "not a tracked thread" is believed before asking the database
# A thread this bot created (an announcement's) may get replies before its row is committed: their
# events are held, in order, until the row is recorded, for at most this long and this many.
EXPECTED_SECONDS = 60.0
HELD_PER_THREAD = 1000
RECENT_DELETES_KEPT = 10_000
# New messages are written in groups, one statement and one commit each: a group gathers for
# COALESCE_SECONDS, and the next one gathers while it is committed, so groups grow with the load
# and the writer keeps up with a burst. Under a flood of 16,000-23,000 messages/s a message waited
# about 24 ms for its commit (median), 95 ms at most (bench/ingest.py), within the 100 ms budget.
# Groups started as soon as the last one commits were smaller and cost the loop more (0.05-0.1x).
COALESCE_SECONDS = 0.01
# A group this big is handed over at once, even while the previous one is still being committed.
MAX_COALESCED = 2000
RECENT_LIVE_KEPT = 100_000
NEWEST = 2**63 - 1  # the upper id bound of the newest page: anything stored before we asked
# A message that reached us after a history page was requested may be missing from that page
# because it is newer, not because it was deleted: such messages are never tombstoned by the page.
# Receive times are remembered this long (far longer than any page request takes).
LIVE_MEMORY_SECONDS = 600.0


MissingIntentReport = Callable[[int], Coroutine[Any, Any, None]]
ThreadRecorded = Callable[[int], None]


def _log_failed_group(committed: asyncio.Future[int]) -> None:
    if not committed.cancelled() and committed.exception() is not None:
        log.error("a group of new comments could not be stored", exc_info=committed.exception())


class ThreadGone(Exception):
    """The thread no longer exists on Discord (Unknown Channel)."""


class HistorySource(Protocol):
    """What catch-up needs from Discord; the cog implements it with discord.py."""

    async def thread_state(self, thread_id: int) -> ThreadChange:
        """The thread as Discord shows it now; raises :class:`ThreadGone` when it was deleted."""

    async def page(self, thread_id: int, *, before: int | None = None, after: int | None = None,
                   limit: int = HISTORY_PAGE_SIZE) -> list[IncomingMessage]:
        """One page of history: the ``limit`` messages right before ``before`` (newest when both
        are None) or right after ``after``, in any order."""


@dataclass(frozen=True, slots=True)
class ThreadSeen:
    """A thread as Discord lists it (active in the session's cache, or archived lately)."""
    thread_id: int
    archived: bool
    last_message_id: int | None


def window_start(days: float, now: datetime | None = None) -> int:
    """The smallest message id within the catch-up window of ``days``."""
    return snowflake_floor((now or utcnow()) - timedelta(days=days))


@dataclass(frozen=True, slots=True)
class SyncReport:
    thread_id: int
    fetched: int
    stored: int
    edited: int
    deleted: int
    thread_gone: bool = False


class DiscussionCapture:
    def __init__(self, database: Database, *, own_user_id: int | None = None,
                 on_missing_intent: MissingIntentReport | None = None,
                 on_thread_recorded: ThreadRecorded | None = None) -> None:
        self.database = database
        self.own_user_id = own_user_id
        self._on_missing_intent = on_missing_intent
        # Told when the announcer recorded a thread (the cog catches it up: what was said in it
        # before its row existed, beyond the events held for it, is not lost).
        self._on_thread_recorded = on_thread_recorded
        self._inbox: deque[tuple[Callable[[Any], Awaitable[object]], object]] = deque()
        self._inbox_task: asyncio.Task[None] | None = None
        self._inbox_empty = asyncio.Event()
        self._inbox_empty.set()
        self._reports: set[asyncio.Task[None]] = set()
        self._tracked: set[int] = set()
        self._not_tracked: dict[int, float] = {}
        self._expected: dict[int, float] = {}
        self._held: dict[int, list[tuple[Callable[[Any], Awaitable[object]], object]]] = {}
        self._recent_deletes: OrderedDict[int, None] = OrderedDict()
        self._recent_live: dict[int, float] = {}
        self._intent_warned: set[int] = set()
        self._creates: list[tuple[IncomingMessage, str]] = []
        self._flush_task: asyncio.Task[None] | None = None
        # Every write of this class goes to the queue under this lock, after the waiting new
        # messages: an edit, delete or reaction is never applied before the message it is about.
        self._order = asyncio.Lock()

    # -- tracked threads ------------------------------------------------------------------------

    async def load(self) -> None:
        self._tracked = await store.tracked_thread_ids(self.database)
        self._not_tracked.clear()

    def thread_tracked(self, thread_id: int) -> None:
        """The announcements side calls this when it stored a new ``threads`` row: the events held
        for the thread meanwhile are handled now, before any later one."""
        self._mark_tracked(thread_id)
        if self._on_thread_recorded is not None:
            self._on_thread_recorded(thread_id)

    def _mark_tracked(self, thread_id: int) -> None:
        self._tracked.add(thread_id)
        self._not_tracked.pop(thread_id, None)
        self._expected.pop(thread_id, None)
        held = self._held.pop(thread_id, None)
        if held:
            self._inbox.extendleft(reversed(held))
            self._start_inbox()

    def thread_expected(self, thread_id: int) -> None:
        """The thread is this bot's own (an announcement's, most likely) but may not be recorded
        yet: its events are held until :meth:`thread_tracked`, never dropped as untracked."""
        if thread_id in self._tracked or thread_id in self._expected:
            return
        now = time.monotonic()
        if len(self._expected) > 1000:
            for stale in [t for t, marked in self._expected.items() if now - marked > EXPECTED_SECONDS]:
                del self._expected[stale]
                self._held.pop(stale, None)
        self._expected[thread_id] = now
        self._not_tracked.pop(thread_id, None)

    def _hold(self, channel_id: int, handler: Callable[[Any], Awaitable[object]], event: object) -> bool:
        """Keep an event of an expected thread for when its row is recorded; False: not expected."""
        marked = self._expected.get(channel_id)
        if marked is None:
            return False
        if time.monotonic() - marked > EXPECTED_SECONDS:
            del self._expected[channel_id]
            dropped = self._held.pop(channel_id, [])
            log.info("thread %s of this bot was not recorded as a post's discussion within %.0f s; %d held "
                     "event(s) dropped", channel_id, EXPECTED_SECONDS, len(dropped))
            return False
        held = self._held.setdefault(channel_id, [])
        if len(held) >= HELD_PER_THREAD:
            return False
        held.append((handler, event))
        return True

    def thread_forgotten(self, thread_id: int) -> None:
        self._tracked.discard(thread_id)

    def known_untracked(self, channel_id: int) -> bool:
        """The channel was found not to be a post's thread a moment ago: its messages can be
        skipped before they are even converted (most messages of a server are elsewhere)."""
        if channel_id in self._expected:
            return False
        checked = self._not_tracked.get(channel_id)
        return checked is not None and time.monotonic() - checked < MISS_RECHECK_SECONDS

    async def is_tracked(self, channel_id: int) -> bool:
        """Cheap for the common cases: a set hit, or a recent miss; else one indexed read."""
        if channel_id in self._tracked:
            return True
        checked = self._not_tracked.get(channel_id)
        now = time.monotonic()
        if checked is not None and now - checked < MISS_RECHECK_SECONDS:
            return False
        if await store.is_tracked_thread(self.database, channel_id):
            self._mark_tracked(channel_id)
            return True
        if channel_id in self._tracked:  # recorded while we were reading
            return True
        if channel_id in self._expected:  # this bot's thread, its row on the way: never cached as a miss
            return False
        if len(self._not_tracked) > 10_000:
            self._not_tracked.clear()
        self._not_tracked[channel_id] = now
        return False

    # -- live events, in the order they arrived -------------------------------------------------

    def receive_message(self, message: IncomingMessage) -> None:
        self._receive(self._on_live_message, message)

    def receive_edit(self, message: IncomingMessage) -> None:
        self._receive(self.on_edit, message)

    def receive_delete(self, deletion: MessageDeletion) -> None:
        self._receive(self.on_delete, deletion)

    def receive_reaction(self, change: ReactionChange) -> None:
        self._receive(self.on_reaction, change)

    def receive_thread_change(self, change: ThreadChange) -> None:
        self._receive(self.on_thread_change, change)

    def _receive(self, handler: Callable[[Any], Awaitable[object]], event: object) -> None:
        # Synchronous on purpose: the cog's listeners call it before they await anything, so events
        # enter the inbox in the order discord.py dispatched them.
        self._inbox.append((handler, event))
        self._start_inbox()

    def _start_inbox(self) -> None:
        self._inbox_empty.clear()
        if self._inbox_task is None:
            self._inbox_task = asyncio.get_running_loop().create_task(
                self._handle_inbox(), name="discussion-capture-events")

    async def _handle_inbox(self) -> None:
        try:
            while self._inbox:
                handler, event = self._inbox.popleft()
                try:
                    await handler(event)
                except Exception:  # one bad event must not stop the capture of the others
                    log.exception("could not handle the live event %r", event)
        finally:
            self._inbox_task = None
            if not self._inbox:
                self._inbox_empty.set()

    async def _on_live_message(self, message: IncomingMessage) -> None:
        outcome = await self.on_message(message)
        if outcome is Verdict.NO_CONTENT and self._on_missing_intent is not None and message.guild_id:
            # Told from a task of its own: posting the warning must not hold the next events back.
            report = asyncio.get_running_loop().create_task(self._on_missing_intent(message.guild_id))
            self._reports.add(report)
            report.add_done_callback(self._reports.discard)

    async def drain(self) -> None:
        """Handle every event received so far."""
        while self._inbox:
            if self._inbox_task is None:
                self._inbox_task = asyncio.get_running_loop().create_task(
                    self._handle_inbox(), name="discussion-capture-events")
            await self._inbox_empty.wait()

    async def on_message(self, message: IncomingMessage) -> Verdict:
        if message.author_id == self.own_user_id:
            # Decided before the tracked check: the invitation line lands before the thread's row is
            # written, and must not leave a "not tracked" mark behind for the first replies.
            return Verdict.OWN
        tracked = message.channel_id in self._tracked or await self.is_tracked(message.channel_id)
        if not tracked and self._hold(message.channel_id, self.on_message, message):
            return Verdict.UNTRACKED
        outcome = verdict(message, own_user_id=self.own_user_id, tracked=tracked)
        if outcome is Verdict.STORE:
            self._creates.append((message, clean_text(message)))
            self._note_live(message.message_id)
            if len(self._creates) >= MAX_COALESCED:
                await self._flush_creates()
            elif self._flush_task is None:
                self._flush_task = asyncio.get_running_loop().create_task(
                    self._write_creates(), name="discussion-capture-writes")
        return outcome

    async def _write_creates(self) -> None:
        """Hand the waiting messages to the writer a group at a time; the next group gathers while
        the previous one is committed."""
        try:
            while self._creates:
                await asyncio.sleep(COALESCE_SECONDS)
                async with self._order:
                    committed = await self._send_creates_locked()
                if committed is not None:
                    await asyncio.wait((committed,))
        finally:
            self._flush_task = None

    async def _flush_creates(self) -> None:
        async with self._order:
            await self._send_creates_locked()

    async def _send_creates_locked(self) -> asyncio.Future[int] | None:
        """Queue the waiting messages as one write; returns the future of its commit."""
        if not self._creates:
            return None
        batch, self._creates = self._creates, []
        try:
            committed = await self.database.send(store.store_comments(batch))
        except BaseException:
            self._creates[:0] = batch  # not handed over (cancelled while waiting for room): kept
            raise
        committed.add_done_callback(_log_failed_group)
        return committed

    async def _enqueue(self, op: WriteOp[Any]) -> None:
        async with self._order:
            await self._send_creates_locked()
            await self.database.enqueue(op)

    async def _write(self, op: WriteOp[T]) -> T:
        async with self._order:
            await self._send_creates_locked()
            return await self.database.write(op)

    async def flush(self) -> None:
        """Handle every event received, hand every waiting message to the writer and wait until
        all is committed."""
        await self.drain()
        await self._flush_creates()
        await self.database.flush()

    async def close(self) -> None:
        """Handle what was received, stop the group timer and write what waits (on unload, before
        the database closes)."""
        await self.drain()
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        await self._flush_creates()

    def _note_live(self, message_id: int) -> None:
        now = time.monotonic()
        self._recent_live[message_id] = now
        if len(self._recent_live) % 1024 == 0:  # prune now and then, not on every message
            while self._recent_live:
                oldest_id, stored_at = next(iter(self._recent_live.items()))
                if now - stored_at < LIVE_MEMORY_SECONDS and len(self._recent_live) <= RECENT_LIVE_KEPT:
                    break
                del self._recent_live[oldest_id]

    async def on_edit(self, message: IncomingMessage) -> Verdict:
        """An edit (or an embed unfurl) of a message, from the full MESSAGE_UPDATE payload."""
        tracked = await self.is_tracked(message.channel_id)
        if not tracked and self._hold(message.channel_id, self.on_edit, message):
            return Verdict.UNTRACKED
        outcome = verdict(message, own_user_id=self.own_user_id, tracked=tracked)
        if outcome is Verdict.STORE:
            await self._enqueue(store.update_comment(message, clean_text(message), utcnow()))
            self._note_live(message.message_id)
        return outcome

    async def on_delete(self, deletion: MessageDeletion) -> bool:
        if not await self.is_tracked(deletion.channel_id):
            self._hold(deletion.channel_id, self.on_delete, deletion)
            return False
        for message_id in deletion.message_ids:
            self._recent_deletes[message_id] = None
        while len(self._recent_deletes) > RECENT_DELETES_KEPT:
            self._recent_deletes.popitem(last=False)
        await self._enqueue(store.tombstone_comments(deletion.message_ids, utcnow()))
        return True

    async def on_reaction(self, change: ReactionChange) -> bool:
        if not await self.is_tracked(change.channel_id):
            self._hold(change.channel_id, self.on_reaction, change)
            return False
        if change.kind == "add" and change.emoji is not None:
            op = store.add_reaction(change.message_id, change.emoji)
        elif change.kind == "remove" and change.emoji is not None:
            op = store.remove_reaction(change.message_id, change.emoji)
        elif change.kind == "clear":
            op = store.clear_reactions(change.message_id)
        elif change.kind == "clear_emoji" and change.emoji is not None:
            op = store.clear_reactions(change.message_id, change.emoji)
        else:
            raise ValueError(f"unknown reaction change {change!r}")
        await self._enqueue(op)
        return True

    async def on_thread_change(self, change: ThreadChange) -> bool:
        if change.thread_id not in self._tracked and not await self.is_tracked(change.thread_id):
            self._hold(change.thread_id, self.on_thread_change, change)
            return False
        await self._enqueue(store.update_thread(change, utcnow()))
        if change.deleted:
            self.thread_forgotten(change.thread_id)
        return True

    async def claim_intent_warning(self, guild_id: int) -> bool:
        """True exactly once per guild (ever, across restarts): the caller tells the admins."""
        if guild_id in self._intent_warned:
            return False
        self._intent_warned.add(guild_id)
        return await self.database.write(store.claim_intent_warning(guild_id, utcnow()))

    # -- catch-up and reconcile -----------------------------------------------------------------

    def _worth_storing(self, message: IncomingMessage) -> bool:
        if message.message_id in self._recent_deletes:
            return False  # deleted live while its history page was on the way
        return verdict(message, own_user_id=self.own_user_id, tracked=True) is Verdict.STORE

    async def _page(self, source: HistorySource, thread_id: int, *, before: int | None = None,
                    after: int | None = None, limit: int = HISTORY_PAGE_SIZE) -> tuple[list[IncomingMessage], float]:
        """A page and the (monotonic) moment it was asked for."""
        requested = time.monotonic()
        return await source.page(thread_id, before=before, after=after, limit=limit), requested

    async def _sync_page(self, thread_id: int, page: Sequence[IncomingMessage], low: int, high: int,
                         tally: dict[str, int], requested: float) -> None:
        keep = [(m, clean_text(m)) for m in page if self._worth_storing(m)]
        newer = {i for i, received in self._recent_live.items() if received >= requested and low <= i <= high}
        present = frozenset(m.message_id for m in page) | newer
        result = await self._write(store.sync_history_page(thread_id, keep, present, low, high, utcnow()))
        for key, value in result.items():
            tally[key] = tally.get(key, 0) + value

    async def _refresh_state(self, thread: ThreadState, source: HistorySource) -> ThreadChange | None:
        """Record the thread's current name/archive/lock; None (and marked deleted) when gone."""
        try:
            change = await source.thread_state(thread.thread_id)
        except ThreadGone:
            await self.database.write(store.update_thread(
                ThreadChange(thread_id=thread.thread_id, deleted=True), utcnow()))
            self.thread_forgotten(thread.thread_id)
            return None
        await self.database.write(store.update_thread(change, utcnow()))
        return change

    async def catch_up(self, thread: ThreadState, source: HistorySource, *, since_id: int) -> SyncReport:
        """After time away: make the thread's messages from the id ``since_id`` on (the catch-up
        window), and everything said after the last stored message, equal to Discord's history:
        new messages, edits, reactions, deletes (tombstones). Pages after a stored id only, never
        the whole history (the reconcile walks that)."""
        await self.flush()  # messages still on their way to the database count as known
        if await self._refresh_state(thread, source) is None:
            return SyncReport(thread.thread_id, 0, 0, 0, 0, thread_gone=True)
        last = await store.last_message_id(self.database, thread.thread_id)
        cursor = 0 if last is None else min(since_id, last)
        return await self._walk_after(thread.thread_id, source, cursor)

    async def _walk_after(self, thread_id: int, source: HistorySource, cursor: int) -> SyncReport:
        """Sync every message after the id ``cursor``, oldest page first; the last page also covers
        whatever is stored beyond it (deleted on Discord, unless it arrived live meanwhile)."""
        tally: dict[str, int] = {}
        fetched = 0
        while True:
            page, requested = await self._page(source, thread_id, after=cursor)
            page = [m for m in page if m.message_id > cursor]
            fetched += len(page)
            if len(page) < HISTORY_PAGE_SIZE:
                await self._sync_page(thread_id, page, cursor + 1, NEWEST, tally, requested)
                break
            newest = max(m.message_id for m in page)
            await self._sync_page(thread_id, page, cursor + 1, newest, tally, requested)
            cursor = newest
        return SyncReport(thread_id, fetched, tally.get("stored", 0), tally.get("edited", 0),
                          tally.get("deleted", 0))

    async def reconcile(self, thread: ThreadState, source: HistorySource) -> SyncReport:
        """Walk the whole history, newest to oldest, and make the stored comments equal to it
        (messages deleted while the bot was away become tombstones)."""
        if await self._refresh_state(thread, source) is None:
            return SyncReport(thread.thread_id, 0, 0, 0, 0, thread_gone=True)
        tally: dict[str, int] = {}
        fetched = 0
        before: int | None = None
        high: int | None = None
        while True:
            page, requested = await self._page(source, thread.thread_id, before=before)
            if before is not None:
                page = [m for m in page if m.message_id < before]
            fetched += len(page)
            last_page = len(page) < HISTORY_PAGE_SIZE
            if not page:
                if high is not None:  # everything older than the last full page is gone
                    await self._sync_page(thread.thread_id, [], 0, high, tally, requested)
                else:  # an empty thread: nothing stored before we asked exists
                    await self._sync_page(thread.thread_id, [], 0, NEWEST, tally, requested)
                break
            oldest = min(m.message_id for m in page)
            top = high if high is not None else NEWEST
            await self._sync_page(thread.thread_id, page, 0 if last_page else oldest, top, tally, requested)
            if last_page:
                break
            before, high = oldest, oldest - 1
        await self.database.write(store.mark_reconciled(thread.thread_id, utcnow()))
        return SyncReport(thread.thread_id, fetched, tally.get("stored", 0), tally.get("edited", 0),
                          tally.get("deleted", 0))

    async def threads_to_catch_up(self, since_id: int, seen: Iterable[ThreadSeen]) -> list[ThreadState]:
        """The threads a catch-up from the id ``since_id`` on must look at: those with stored
        activity in the window, and those Discord lists (``seen``) with newer messages than stored
        or another archive state (talked in, unarchived or archived while the bot was away)."""
        chosen = {thread.thread_id: thread for thread in await store.threads_active_since(self.database, since_id)}
        tracked = await store.tracked_thread_ids(self.database)
        for thread in seen:
            if thread.thread_id in chosen or thread.thread_id not in tracked:
                continue
            stored = await store.get_thread(self.database, thread.thread_id)
            if stored is None:
                continue
            last = await store.last_message_id(self.database, thread.thread_id)
            if stored.archived != thread.archived or (thread.last_message_id or 0) > (last or 0):
                chosen[thread.thread_id] = stored
        return [chosen[thread_id] for thread_id in sorted(chosen)]

    async def thread(self, thread_id: int) -> ThreadState | None:
        """The tracked thread as stored (None: not a post's thread, or deleted)."""
        state = await store.get_thread(self.database, thread_id)
        return None if state is None or state.deleted else state

    async def parent_channel_ids(self) -> list[int]:
        """The channels the tracked threads belong to."""
        return await store.tracked_parent_channel_ids(self.database)

    async def threads_due_for_reconcile(self, interval_hours: float, now: datetime | None = None, *,
                                        quiet_before: int = 0) -> list[ThreadState]:
        """Threads not reconciled within the interval; archived ones with no activity from the id
        ``quiet_before`` on are reconciled once, then left out until they are unarchived."""
        moment = now or utcnow()
        due: list[ThreadState] = []
        for thread in await store.threads_to_reconcile(self.database, quiet_before):
            last = thread.last_reconciled_at
            if last is None or (moment - last).total_seconds() >= interval_hours * 3600 * 0.99:
                due.append(thread)
        return due
