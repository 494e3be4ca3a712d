"""Announcements: polls the feeds and announces their new posts, one thread each (thin glue over
bot.feeds.scheduler and bot.announce)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import discord
from discord.ext import commands, tasks

from bot.announce.machine import Announcer, CycleReport, DiscordError
from bot.announce.retry import RetrySchedule
from bot.app import ConversationBot
from bot.feeds import registry
from bot.feeds.scheduler import FeedScheduler
from bot.model.posts import ChannelKind
from bot.storage.feeds import pending_feed_notices
from cogs._announce_discord import DiscordAnnouncePort
from cogs._background import Supervised

log = logging.getLogger(__name__)
# A cycle for a channel whose window frees at T runs just after T (the window counts T itself).
ROOM_MARGIN_SECONDS = 0.05


class Announcements(commands.Cog):
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot
        self.port = DiscordAnnouncePort(bot)
        settings = bot.settings
        tuning = settings.tuning
        self.announcer = Announcer(bot.database, self.port, per_cycle=settings.announcements_per_cycle,
                                   archive_minutes=settings.thread_auto_archive_minutes,
                                   flood_window=timedelta(seconds=tuning.announce_flood_window_seconds),
                                   retry_schedule=RetrySchedule(
                                       first=timedelta(seconds=tuning.announce_retry_first_seconds),
                                       longest=timedelta(seconds=tuning.announce_retry_longest_seconds),
                                       give_up_after=timedelta(seconds=tuning.announce_give_up_after_seconds)))
        self.announcer.on_thread_recorded = self._thread_recorded
        self.announcer.notify_admins = self.port.notify_admins
        self._cycle_lock = asyncio.Lock()
        self._registered = False
        self.announce_interval = tuning.announce_interval_seconds
        self.feed_loop.change_interval(seconds=min(tuning.feed_tick_seconds, float(settings.poll_interval_seconds)))
        self.loops = (Supervised(self.announce_loop), Supervised(self.feed_loop))

    async def cog_load(self) -> None:
        await self.bot.once_per_bot.add("feed polling and announcing", self._start_loops, self._stop_loops)

    async def cog_unload(self) -> None:
        await self.bot.once_per_bot.remove("feed polling and announcing")

    async def _start_loops(self) -> None:
        for loop in self.loops:
            loop.start()

    async def _stop_loops(self) -> None:
        for loop in self.loops:
            loop.stop()

    @property
    def scheduler(self) -> FeedScheduler:
        return self.bot.feed_scheduler

    def _thread_recorded(self, thread_id: int) -> None:
        # The discussions cog captures the messages of tracked threads; tell it at once.
        discussions = self.bot.get_cog("Discussions")
        capture = getattr(discussions, "capture", None)
        if capture is not None:
            capture.thread_tracked(thread_id)

    async def announce_now(self) -> CycleReport:
        """One announcement cycle (resume interrupted ones, send the next queued, apply edits)."""
        async with self._cycle_lock:
            report = await self.announcer.run_cycle()
        busy = report.announced or report.failed or report.retry or report.edited
        log.log(logging.INFO if busy else logging.DEBUG,
                "announcement cycle done: %d announced, %d failed, %d to retry, %d edited",
                len(report.announced), len(report.failed), len(report.retry), len(report.edited))
        return report

    @tasks.loop(seconds=0)  # paces itself: a cycle, then a sleep until woken or due
    async def announce_loop(self) -> None:
        wake = self.bot.announce_wake
        wake.clear()  # posts stored from now on wake the next sleep at once
        pause = self.announce_interval
        try:
            room_at = (await self.announce_now()).room_at
            if room_at is not None:  # a channel's backlog gets room again then (the rate's window)
                pause = min(pause, (room_at - self.announcer.clock()).total_seconds() + ROOM_MARGIN_SECONDS)
        except Exception:  # the loop must survive anything (a database hiccup, a bug)
            log.exception("announcement cycle failed; the next one runs as scheduled")
        await wake.sleep(pause)

    @announce_loop.before_loop
    async def _before_announce(self) -> None:
        await self.bot.wait_until_ready()

    @tasks.loop(seconds=60)  # the interval is set from the settings' tuning in __init__
    async def feed_loop(self) -> None:
        try:
            if not self._registered:
                await self.register_configured_feeds()
            await self.scheduler.run_due()
            await self.post_feed_notices()
        except Exception:  # the loop must survive anything
            log.exception("feed poll failed; the next one runs as scheduled")

    @feed_loop.before_loop
    async def _before_feeds(self) -> None:
        await self.bot.wait_until_ready()

    async def register_configured_feeds(self) -> None:
        """FEED_URLS announce in ANNOUNCE_CHANNEL_ID (idempotent: registered feeds stay as they are)."""
        settings = self.bot.settings
        if not settings.feed_urls or settings.announce_channel_id is None:
            self._registered = True
            return
        channel = self.bot.get_channel(settings.announce_channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(settings.announce_channel_id)
            except discord.HTTPException as error:
                if error.status >= 500 or error.status == 429:
                    log.warning("could not look up ANNOUNCE_CHANNEL_ID yet (HTTP %d); trying again next tick",
                                error.status)
                    return
                self._registered = True  # a wrong id or a missing permission: said once, not repeated
                log.error("ANNOUNCE_CHANNEL_ID %d: the bot cannot find or see that channel (Discord error %s); "
                          "check the id and that the bot is in the server; FEED_URLS are not registered",
                          settings.announce_channel_id, error.code)
                return
        kind: ChannelKind
        if isinstance(channel, discord.ForumChannel):
            kind = "forum"
        elif isinstance(channel, discord.TextChannel):
            kind = "news" if channel.is_news() else "text"
        else:
            self._registered = True
            log.error("ANNOUNCE_CHANNEL_ID %d is not a text, announcement or forum channel; FEED_URLS are "
                      "not registered", settings.announce_channel_id)
            return
        for url in settings.feed_urls:
            await registry.register_feed(self.bot.database, guild_id=channel.guild.id, url=url,
                                         channel_id=channel.id, channel_kind=kind)
        self._registered = True
        log.info("registered %d feed(s) from FEED_URLS in channel %d", len(settings.feed_urls), channel.id)

    async def post_feed_notices(self) -> None:
        """Tell the admins once, in the feed's channel, that a feed was disabled or moved."""
        for notice in await pending_feed_notices(self.bot.database):
            try:
                await self.port.send_notice(notice.channel_id, notice.message)
            except DiscordError as error:
                if not error.permanent:
                    continue  # tried again next tick
                log.warning("could not post a feed notice in channel %d (%s): %s", notice.channel_id,
                            error.code, notice.message)
            await registry.mark_notice_sent(self.bot.database, notice)


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(Announcements(bot))
