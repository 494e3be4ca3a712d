"""The announcement state machine's Discord side (:class:`bot.announce.machine.DiscordPort`) over
discord.py. Every Discord failure leaves here as a :class:`DiscordError` with its status and code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import discord

from bot.announce.embed import AnnouncementEmbed
from bot.announce.machine import ChannelInfo, DiscordError, ThreadInfo
from bot.announce.tags import ForumTag
from bot.app import NO_MENTIONS, ConversationBot
from bot.discussions.visibility import channels_seen
from cogs.visibility import everyone_can_view

log = logging.getLogger(__name__)
HISTORY_LOOKBACK = 100  # messages looked through for an announcement sent before a crash
FORUM_LOOKBACK = 50  # the bot's newest forum posts looked through likewise
THREAD_ALREADY_CREATED = 160004
# What announcing needs in a text channel, and in a forum, with the names Discord's interface shows.
TEXT_PERMISSIONS = (("view_channel", "View Channel"), ("send_messages", "Send Messages"),
                    ("embed_links", "Embed Links"), ("read_message_history", "Read Message History"),
                    ("create_public_threads", "Create Public Threads"),
                    ("send_messages_in_threads", "Send Messages in Threads"))
FORUM_PERMISSIONS = (("view_channel", "View Channel"), ("send_messages", "Send Messages (Create Posts)"),
                     ("embed_links", "Embed Links"), ("read_message_history", "Read Message History"))


@contextmanager
def discord_errors() -> Iterator[None]:
    try:
        yield
    except discord.HTTPException as error:
        permanent = 400 <= error.status < 500 and error.status != 429
        raise DiscordError(error.text or str(error), status=error.status, code=error.code or None,
                           permanent=permanent) from error
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise DiscordError(f"network error: {type(error).__name__}", status=None, code=None,
                           permanent=False) from error


@contextmanager
def naming_missing_permissions(channel: Any) -> Iterator[None]:
    """A 403 names the permissions the bot lacks in ``channel``, as far as the cache tells."""
    try:
        yield
    except DiscordError as error:
        if error.status != 403 or error.missing:
            raise
        missing = missing_permissions(channel)
        if not missing:
            raise
        raise DiscordError(error.text, status=error.status, code=error.code, permanent=error.permanent,
                           missing=missing) from error


def missing_permissions(channel: Any) -> tuple[str, ...]:
    guild = getattr(channel, "guild", None)
    me = guild.me if guild is not None else None
    if me is None:
        return ()
    granted = channel.permissions_for(me)
    if not granted.view_channel:  # every other permission follows from it
        return ("View Channel",)
    wanted: tuple[tuple[str, str], ...] = (
        FORUM_PERMISSIONS if isinstance(channel, discord.ForumChannel) else TEXT_PERMISSIONS)
    if not granted.send_messages:  # Discord takes Embed Links away with it
        wanted = tuple(item for item in wanted if item[0] != "embed_links")
    return tuple(name for flag, name in wanted if not getattr(granted, flag))


def to_discord(embed: AnnouncementEmbed) -> discord.Embed:
    return discord.Embed.from_dict(embed.to_dict())


def ping(ping_role_id: int | None) -> tuple[str | None, discord.AllowedMentions]:
    """The configured role is the only mention an announcement may ever make."""
    if ping_role_id is None:
        return None, NO_MENTIONS
    # The content is only this role's mention, so allowing role mentions allows exactly this one
    # (discord.py would send a role list as numbers, which Discord's published schema does not admit).
    return f"<@&{ping_role_id}>", discord.AllowedMentions(everyone=False, users=False, replied_user=False,
                                                          roles=True)


class DiscordAnnouncePort:
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot

    @property
    def me(self) -> int:
        assert self.bot.user is not None
        return self.bot.user.id

    async def _channel(self, channel_id: int) -> Any:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            with discord_errors():
                channel = await self.bot.fetch_channel(channel_id)
        return channel

    async def _thread(self, thread_id: int) -> discord.Thread | None:
        """The thread as Discord has it now (archived and locked states change behind the cache)."""
        try:
            with discord_errors():
                channel = await self.bot.fetch_channel(thread_id)
        except DiscordError as error:
            if error.status == 404:
                return None
            raise
        return channel if isinstance(channel, discord.Thread) else None

    async def channel(self, channel_id: int) -> ChannelInfo:
        channel = await self._channel(channel_id)
        if isinstance(channel, discord.ForumChannel | discord.TextChannel):
            # Before its first thread exists: the web server serves only threads of public channels.
            everyone = None
            if channel.guild.unavailable:  # a guild of another process's shard: its roles by REST
                with discord_errors():
                    everyone = (await self.bot.fetch_guild(channel.guild.id)).default_role
            await channels_seen(self.bot.database, channel.guild.id,
                                {channel.id: everyone_can_view(channel, everyone)})
        if isinstance(channel, discord.ForumChannel):
            tags = tuple(ForumTag(tag.id, tag.name) for tag in channel.available_tags)
            return ChannelInfo(channel.id, "forum", tags, channel.flags.require_tag)
        if isinstance(channel, discord.TextChannel):
            return ChannelInfo(channel.id, "news" if channel.is_news() else "text")
        raise DiscordError("the channel is not a text, announcement or forum channel", status=None, code=None,
                           permanent=True)

    async def find_announcement(self, channel_id: int, url: str) -> int | None:
        channel = await self._channel(channel_id)
        with discord_errors():
            async for message in channel.history(limit=HISTORY_LOOKBACK):
                if message.author.id == self.me and any(embed.url == url for embed in message.embeds):
                    return int(message.id)
        return None

    async def send_announcement(self, channel_id: int, embed: AnnouncementEmbed, ping_role_id: int | None) -> int:
        channel = await self._channel(channel_id)
        content, allowed = ping(ping_role_id)
        with naming_missing_permissions(channel), discord_errors():
            message = await channel.send(content=content, embed=to_discord(embed), allowed_mentions=allowed)
        return int(message.id)

    async def existing_thread(self, channel_id: int, message_id: int) -> ThreadInfo | None:
        # A thread started from a message has the message's id.
        thread = await self._thread(message_id)
        if thread is None or thread.parent_id != channel_id:
            return None
        return _info(thread)

    async def create_thread(self, channel_id: int, message_id: int, name: str,
                            auto_archive_minutes: int) -> ThreadInfo:
        channel = await self._channel(channel_id)
        try:
            with naming_missing_permissions(channel), discord_errors():
                thread = await channel.get_partial_message(message_id).create_thread(
                    name=name, auto_archive_duration=auto_archive_minutes)
        except DiscordError as error:
            if error.code != THREAD_ALREADY_CREATED:
                raise
            # Discord's 160004: the message has its thread already (a moderator was quicker, or
            # our own request's answer was lost); it has the message's id: fetch it and use it.
            existing = await self._thread(message_id)
            if existing is None:
                raise
            thread = existing
        return _info(thread)

    async def find_forum_post(self, forum_id: int, url: str) -> int | None:
        forum = await self._channel(forum_id)
        mine = sorted((t for t in forum.threads if t.owner_id == self.me), key=lambda t: t.id, reverse=True)
        for thread in mine[:FORUM_LOOKBACK]:
            try:
                with discord_errors():
                    starter = await thread.fetch_message(thread.id)
            except DiscordError as error:
                if error.status == 404:
                    continue
                raise
            if any(embed.url == url for embed in starter.embeds):
                return int(thread.id)
        return None

    async def create_forum_post(self, forum_id: int, name: str, embed: AnnouncementEmbed, tag_ids: tuple[int, ...],
                                ping_role_id: int | None, auto_archive_minutes: int) -> int:
        forum = await self._channel(forum_id)
        tags = [tag for tag in (forum.get_tag(tag_id) for tag_id in tag_ids) if tag is not None]
        content, allowed = ping(ping_role_id)
        with naming_missing_permissions(forum), discord_errors():
            created = await forum.create_thread(name=name, content=content, embed=to_discord(embed),
                                                applied_tags=tags, allowed_mentions=allowed,
                                                auto_archive_duration=auto_archive_minutes)
        return int(created.thread.id)

    async def own_messages_in_thread(self, thread_id: int) -> int:
        thread = await self._thread(thread_id)
        if thread is None:
            return 0
        count = 0
        with discord_errors():
            async for message in thread.history(limit=20, oldest_first=True):
                if (message.author.id == self.me and message.id != thread_id
                        and message.type == discord.MessageType.default):
                    count += 1
        return count

    async def post_in_thread(self, thread_id: int, text: str) -> None:
        thread = await self._thread(thread_id)
        if thread is None:
            raise DiscordError("the thread no longer exists", status=404, code=10003, permanent=True)
        with discord_errors():
            if thread.archived and not thread.locked:
                thread = await thread.edit(archived=False)
            await thread.send(text, allowed_mentions=NO_MENTIONS)

    async def edit_announcement(self, channel_id: int, message_id: int, embed: AnnouncementEmbed) -> None:
        channel = await self._channel(channel_id)
        with discord_errors():
            await channel.get_partial_message(message_id).edit(embed=to_discord(embed),
                                                              allowed_mentions=NO_MENTIONS)

    async def thread(self, thread_id: int) -> ThreadInfo | None:
        thread = await self._thread(thread_id)
        return None if thread is None else _info(thread)

    async def update_thread(self, thread_id: int, *, name: str | None = None, archived: bool | None = None) -> None:
        thread = await self._thread(thread_id)
        if thread is None:
            raise DiscordError("the thread no longer exists", status=404, code=10003, permanent=True)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if archived is not None:
            changes["archived"] = archived
        with discord_errors():
            await thread.edit(**changes)

    async def send_notice(self, channel_id: int, text: str) -> None:
        """A plain admin notice in a feed's channel (a forum gets it as a post of its own)."""
        channel = await self._channel(channel_id)
        with discord_errors():
            if isinstance(channel, discord.ForumChannel):
                tags = channel.available_tags[:1] if channel.flags.require_tag else []
                await channel.create_thread(name="Feed notice", content=text[:2000], applied_tags=tags,
                                            allowed_mentions=NO_MENTIONS)
            else:
                await channel.send(text[:2000], allowed_mentions=NO_MENTIONS)


    async def notify_admins(self, guild_id: int, channel_id: int, text: str) -> None:
        """What the admins must fix, posted in the feed's channel; when the bot cannot post there (the
        very problem, often), in the server's system channel; the log has it in any case."""
        guild = self.bot.get_guild(guild_id)
        places = [self.bot.get_channel(channel_id)] + ([guild.system_channel] if guild is not None else [])
        for place in places:
            if not isinstance(place, discord.TextChannel | discord.ForumChannel) or not _can_post(place):
                continue
            try:
                await self.send_notice(place.id, text)
                return
            except DiscordError as error:
                log.info("could not post an admin notice in channel %d (Discord error %s)", place.id, error.code)
        log.warning("guild %d: found no channel to tell the admins: %s", guild_id, text)


def _can_post(channel: discord.TextChannel | discord.ForumChannel) -> bool:
    me = channel.guild.me
    if me is None:
        return False
    granted = channel.permissions_for(me)
    return granted.view_channel and granted.send_messages


def _info(thread: discord.Thread) -> ThreadInfo:
    return ThreadInfo(thread.id, thread.name, archived=thread.archived, locked=thread.locked)

