"""Discussion capture glue: discord.py events in, :class:`DiscussionCapture` called.

Catch-up runs on every fresh session of a shard (``on_shard_ready`` fires after its IDENTIFY, not
after a RESUME, which replays what was missed) for that shard's guilds' threads with activity
within ``CATCH_UP_DAYS``; a periodic loop
reconciles whole threads (deletes made while offline), after the start-up catch-up, and leaves out
archived threads with no recent activity once they were reconciled.

A thread this bot owns is "expected": a reply posted before its row is committed is held until the
announcer records it, never dropped.

The missing Message Content intent is reported once per guild, in the channel where the guild's
feeds announce (the channel the admins chose for this bot and where it can post), else in the
guild's system channel, and always in the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands, tasks

from bot.app import ConversationBot
from bot.discussions.service import DiscussionCapture, ThreadGone, ThreadSeen, window_start
from bot.model.discord_ids import snowflake_time
from bot.model.messages import MessageDeletion, ReactionChange, ThreadChange, ThreadState
from bot.storage.comments import announce_channel_ids
from cogs._background import Supervised
from cogs._discussion_discord import DiscordHistory, emoji_key, incoming

log = logging.getLogger(__name__)

INTENT_WARNING = (
    "**Comments are not being saved.** Discord sends me the messages of the post discussions without "
    "their text, because the *Message Content* intent is off for this bot. To fix it, the bot's owner "
    "opens https://discord.com/developers/applications, picks this bot, goes to **Bot > Privileged "
    "Gateway Intents**, switches on **Message Content Intent**, saves, and restarts the bot. "
    "Messages sent meanwhile are picked up when it reconnects."
)


class Discussions(commands.Cog):
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot
        self.capture = DiscussionCapture(bot.database, on_missing_intent=self.warn_missing_intent,
                                         on_thread_recorded=self._thread_recorded)
        self.history = DiscordHistory(bot)
        self._sync_lock = asyncio.Lock()
        self._catch_up_task: asyncio.Task[None] | None = None
        self._shards_to_catch_up: set[int] = set()  # fresh sessions not caught up yet
        self._shards_caught_up: set[int] = set()
        self._caught_up = asyncio.Event()  # every shard was caught up once: the reconcile may start
        self._new_thread_catch_ups: set[asyncio.Task[None]] = set()
        self._unloaded = False
        self.reconcile_loop.change_interval(hours=bot.settings.reconcile_interval_hours)
        self.reconcile_supervisor = Supervised(self.reconcile_loop)

    async def cog_load(self) -> None:
        await self.capture.load()
        if self.bot.user is not None:
            self.capture.own_user_id = self.bot.user.id
        await self.bot.once_per_bot.add("reconcile of discussions", self._start_reconcile, self._stop_reconcile)

    async def _start_reconcile(self) -> None:
        self.reconcile_supervisor.start()

    async def _stop_reconcile(self) -> None:
        self.reconcile_supervisor.stop()

    async def cog_unload(self) -> None:
        self._unloaded = True
        await self.bot.once_per_bot.remove("reconcile of discussions")
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
        for task in list(self._new_thread_catch_ups):
            task.cancel()
        await self.capture.close()  # messages waiting to be grouped reach the writer before it closes

    # -- live events ----------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None:
            return
        self._expect_own_thread(message.channel)
        if self.capture.known_untracked(message.channel.id):
            return
        self.capture.receive_message(incoming(message))

    @commands.Cog.listener()
    async def on_thread_create(self, thread: discord.Thread) -> None:
        self._expect_own_thread(thread)

    def _expect_own_thread(self, channel: object) -> None:
        """A thread this bot owns is an announcement's, most likely: THREAD_CREATE comes before
        its first message, often before the announcer committed its row."""
        me = self.bot.user
        if isinstance(channel, discord.Thread) and me is not None and channel.owner_id == me.id:
            self.capture.thread_expected(channel.id)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.guild_id is None or "author" not in payload.data:
            return
        self.capture.receive_edit(incoming(payload.message))

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.capture.receive_delete(MessageDeletion(payload.channel_id, frozenset({payload.message_id}),
                                                     payload.guild_id))

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.capture.receive_delete(MessageDeletion(payload.channel_id, frozenset(payload.message_ids),
                                                     payload.guild_id))

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.capture.receive_reaction(ReactionChange("add", payload.channel_id, payload.message_id,
                                                      emoji_key(payload.emoji)))

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.capture.receive_reaction(ReactionChange("remove", payload.channel_id, payload.message_id,
                                                      emoji_key(payload.emoji)))

    @commands.Cog.listener()
    async def on_raw_reaction_clear(self, payload: discord.RawReactionClearEvent) -> None:
        self.capture.receive_reaction(ReactionChange("clear", payload.channel_id, payload.message_id))

    @commands.Cog.listener()
    async def on_raw_reaction_clear_emoji(self, payload: discord.RawReactionClearEmojiEvent) -> None:
        self.capture.receive_reaction(ReactionChange("clear_emoji", payload.channel_id, payload.message_id,
                                                      emoji_key(payload.emoji)))

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        data: Any = payload.data
        metadata = data.get("thread_metadata") or {}
        self.capture.receive_thread_change(ThreadChange(
            payload.thread_id, name=data.get("name"), archived=metadata.get("archived"),
            locked=metadata.get("locked")))

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.capture.receive_thread_change(ThreadChange(payload.thread_id, deleted=True))

    # -- missing intent -------------------------------------------------------------------------

    async def warn_missing_intent(self, guild_id: int) -> None:
        guild = self.bot.get_guild(guild_id)
        if guild is None or not await self.capture.claim_intent_warning(guild.id):
            return
        log.error("guild %s: messages arrive without content: the Message Content intent is off. Enable it "
                  "in the developer portal: Bot > Privileged Gateway Intents > Message Content Intent",
                  guild.id)
        candidates: list[int] = await announce_channel_ids(self.bot.database, guild.id)
        if self.bot.settings.announce_channel_id:
            candidates.append(self.bot.settings.announce_channel_id)
        if guild.system_channel is not None:
            candidates.append(guild.system_channel.id)
        for channel_id in dict.fromkeys(candidates):
            channel = guild.get_channel(channel_id)
            if not isinstance(channel, discord.TextChannel):
                continue
            try:
                await channel.send(INTENT_WARNING, allowed_mentions=discord.AllowedMentions.none())
                return
            except discord.HTTPException as error:
                log.warning("could not post the intent warning in #%s: %s", channel.name, error)
        log.error("guild %s: found no channel to post the intent warning in; only this log has it", guild.id)

    # -- catch-up and reconcile -----------------------------------------------------------------

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        if self._unloaded:  # dispatched just before the bot closed
            return
        if self.bot.user is not None:
            self.capture.own_user_id = self.bot.user.id
        await self.capture.load()
        self._shards_to_catch_up.add(shard_id)
        if self._catch_up_task is not None and not self._catch_up_task.done():
            return  # the running catch-up takes this shard in its next round
        self._catch_up_task = asyncio.create_task(self._catch_up_all(), name="discussion-catch-up")

    async def _catch_up_all(self) -> None:
        try:
            await self._catch_up_rounds()
        except Exception:
            log.exception("the catch-up of the discussions failed; the next session or reconcile retries")
        finally:
            if self._shards_caught_up >= set(self.bot.shard_ids or range(self.bot.shard_count or 1)):
                self._caught_up.set()

    def window_start(self) -> int:
        """The smallest message id within the catch-up window."""
        return window_start(self.bot.settings.catch_up_days)

    async def threads_to_catch_up(self, since_id: int, shard_ids: set[int]) -> list[ThreadState]:
        """What Discord shows of the threads of the guilds of ``shard_ids``: the active ones from
        the session's GUILD_CREATE (no request), and those archived within the window (one listing
        per channel, newest archived first: talked in while the bot was away, archived again
        since); the capture picks."""
        guilds = [guild for guild in self.bot.guilds if guild.shard_id in shard_ids]
        seen = [ThreadSeen(thread.id, thread.archived, thread.last_message_id)
                for guild in guilds for thread in guild.threads if not thread.archived]
        since = snowflake_time(since_id)
        for parent_id in await self.capture.parent_channel_ids():
            parent = self.bot.get_channel(parent_id)
            if not isinstance(parent, discord.TextChannel | discord.ForumChannel) or parent.guild not in guilds:
                continue
            try:
                async for archived in parent.archived_threads(limit=None):
                    if archived.archive_timestamp < since:
                        break
                    seen.append(ThreadSeen(archived.id, True, archived.last_message_id))
            except discord.HTTPException as error:
                log.warning("could not list the archived threads of channel %s: %s", parent_id, error)
        guild_ids = {guild.id for guild in guilds}
        return [thread for thread in await self.capture.threads_to_catch_up(since_id, seen)
                if thread.guild_id in guild_ids]

    def _thread_recorded(self, thread_id: int) -> None:
        """A thread just recorded by the announcer is caught up once (one history page): replies
        made before its row existed (before a restart, say) are stored too."""
        task = asyncio.get_running_loop().create_task(self._catch_up_new_thread(thread_id),
                                                      name=f"discussion-catch-up-{thread_id}")
        self._new_thread_catch_ups.add(task)
        task.add_done_callback(self._new_thread_catch_ups.discard)

    async def _catch_up_new_thread(self, thread_id: int) -> None:
        try:
            async with self._sync_lock:
                thread = await self.capture.thread(thread_id)
                if thread is None:
                    return
                report = await self.capture.catch_up(thread, self.history, since_id=self.window_start())
        except ThreadGone:
            await self.capture.on_thread_change(ThreadChange(thread_id, deleted=True))
        except discord.HTTPException as error:
            log.warning("catch-up of the new thread %s failed: %s", thread_id, error)
        except Exception:
            log.exception("catch-up of the new thread %s failed", thread_id)
        else:
            if report.stored or report.edited or report.deleted:
                log.info("caught up new thread %s: %d new, %d edited, %d deleted", thread_id, report.stored,
                         report.edited, report.deleted)

    async def _catch_up_rounds(self) -> None:
        while self._shards_to_catch_up:
            shard_id = min(self._shards_to_catch_up)  # one shard at a time: one log line each
            self._shards_to_catch_up.discard(shard_id)
            try:
                threads = await self._catch_up_shards({shard_id})
            finally:
                self._shards_caught_up.add(shard_id)  # tried: a failure is retried by the reconcile
            log.info("catch-up of %d discussion thread(s) done (shard %d)", len(threads), shard_id)

    async def _catch_up_shards(self, shard_ids: set[int]) -> list[ThreadState]:
        async with self._sync_lock:
            since_id = self.window_start()
            threads = await self.threads_to_catch_up(since_id, shard_ids)
            for thread in threads:
                try:
                    report = await self.capture.catch_up(thread, self.history, since_id=since_id)
                except ThreadGone:
                    await self.capture.on_thread_change(ThreadChange(thread.thread_id, deleted=True))
                except discord.HTTPException as error:
                    log.warning("catch-up of thread %s failed: %s", thread.thread_id, error)
                except Exception:
                    log.exception("catch-up of thread %s failed", thread.thread_id)
                else:
                    if report.stored or report.edited or report.deleted:
                        log.info("caught up thread %s: %d new, %d edited, %d deleted", thread.thread_id,
                                 report.stored, report.edited, report.deleted)
        return threads

    @tasks.loop(hours=24)
    async def reconcile_loop(self) -> None:
        # A tasks.loop stops for good on an exception it does not know: never let one out.
        try:
            await self._caught_up.wait()  # deletes made while offline are applied first, within seconds
            await self.reconcile_due()
        except Exception:
            log.exception("the periodic reconcile failed; it runs again at the next interval")

    async def reconcile_due(self, *, everything: bool = False) -> int:
        """Reconcile every thread not reconciled within the interval (or all) and not retired;
        returns how many. The lock is taken per thread, so a new session's catch-up never waits
        for a long reconcile."""
        hours = 0.0 if everything else self.bot.settings.reconcile_interval_hours
        done = 0
        for thread in await self.capture.threads_due_for_reconcile(hours, quiet_before=self.window_start()):
            async with self._sync_lock:
                try:
                    report = await self.capture.reconcile(thread, self.history)
                except ThreadGone:
                    await self.capture.on_thread_change(ThreadChange(thread.thread_id, deleted=True))
                except discord.HTTPException as error:
                    log.warning("reconcile of thread %s failed: %s", thread.thread_id, error)
                except Exception:
                    log.exception("reconcile of thread %s failed", thread.thread_id)
                else:
                    done += 1
                    if report.stored or report.edited or report.deleted:
                        log.info("reconciled thread %s: %d new, %d edited, %d deleted", thread.thread_id,
                                 report.stored, report.edited, report.deleted)
        log.info("reconcile of %d discussion thread(s) done", done)
        return done

    @reconcile_loop.before_loop
    async def _before_reconcile(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(Discussions(bot))
