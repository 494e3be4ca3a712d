"""discord.py objects to the discussion core's dataclasses, and history over REST (for the
Discussions cog; a private module, so it is not loaded as an extension)."""

from __future__ import annotations

import discord

from bot.app import ConversationBot
from bot.discussions.service import HISTORY_PAGE_SIZE, ThreadGone
from bot.model.messages import AttachmentInfo, Extra, IncomingMessage, ReactionCount, ThreadChange


def emoji_key(emoji: discord.PartialEmoji | discord.Emoji | str) -> str:
    """Unicode emoji as themselves, custom ones as name:id."""
    if isinstance(emoji, str):
        return emoji
    if emoji.id:
        return f"{emoji.name}:{emoji.id}"
    return str(emoji.name)


_avatar_urls: dict[tuple[int, object, object], str] = {}


def avatar_url(author: discord.User | discord.Member) -> str:
    """The author's avatar URL as shown in the guild, memoised per (user, avatar hashes).

    Building it makes two Asset objects per message, the costliest part of turning a message into
    a comment; the hashes read here (getattr with defaults) only key the memo: were they renamed
    in a future discord.py, the URL would merely be computed once per user.
    """
    key = (author.id, getattr(author, "_avatar", None), getattr(getattr(author, "_user", None), "_avatar", None))
    url = _avatar_urls.get(key)
    if url is None:
        if len(_avatar_urls) > 50_000:
            _avatar_urls.clear()
        url = _avatar_urls[key] = author.display_avatar.url
    return url


def incoming(message: discord.Message, *, with_reactions: bool = False) -> IncomingMessage:
    """The core's view of a discord.py message (from the gateway or from history)."""
    reference = message.reference
    reply_to = None
    if reference is not None and reference.message_id is not None and message.type is discord.MessageType.reply \
            and (reference.channel_id is None or reference.channel_id == message.channel.id):
        reply_to = reference.message_id
    extras: tuple[Extra, ...] = ()
    if message.stickers or message.embeds:
        extras = tuple([Extra("sticker", sticker.name, sticker.url) for sticker in message.stickers]
                       + [Extra("embed", embed.title or embed.url, embed.url) for embed in message.embeds
                          if embed.url])
    author = message.author
    content = message.content
    files = message.attachments
    if not content and not files and message.message_snapshots:
        # A forwarded message: its text and files are in the snapshot (an empty content here does
        # not mean the Message Content intent is missing).
        snapshot = message.message_snapshots[0]
        content, files = snapshot.content, snapshot.attachments
        extras += tuple(Extra("embed", embed.title or embed.url, embed.url) for embed in snapshot.embeds
                        if embed.url)
    if message.poll is not None:
        extras += (Extra("poll", message.poll.question, message.jump_url),)
    return IncomingMessage(
        message_id=message.id, channel_id=message.channel.id,
        guild_id=message.guild.id if message.guild else None,
        author_id=author.id, author_name=author.display_name,
        author_avatar_url=avatar_url(author), author_is_bot=author.bot,
        message_type=message.type.value, content=content, edited_at=message.edited_at, reply_to=reply_to,
        attachments=tuple(AttachmentInfo(a.id, a.filename, a.url, a.size, a.content_type)
                          for a in files) if files else (),
        extras=extras,
        user_names=tuple((user.id, user.display_name) for user in message.mentions) if message.mentions else (),
        role_names=tuple((role.id, role.name) for role in message.role_mentions)
        if "<@&" in content else (),
        channel_names=tuple((channel.id, channel.name) for channel in message.channel_mentions
                            if hasattr(channel, "name")) if "<#" in content else (),
        reactions=tuple(ReactionCount(emoji_key(r.emoji), r.count) for r in message.reactions)
        if with_reactions else None,
    )


class DiscordHistory:
    """:class:`bot.discussions.service.HistorySource` over discord.py's REST calls."""

    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot
        self._threads: dict[int, discord.Thread] = {}

    async def thread_state(self, thread_id: int) -> ThreadChange:
        # An active thread is in the session's cache (GUILD_CREATE lists them, events keep them
        # current): no request. Archived or unknown ones are asked for.
        cached = self.bot.get_channel(thread_id)
        if isinstance(cached, discord.Thread) and not cached.archived:
            self._threads[thread_id] = cached
            return ThreadChange(thread_id, name=cached.name, archived=False, locked=cached.locked)
        try:
            channel = await self.bot.fetch_channel(thread_id)
        except discord.NotFound:
            self._threads.pop(thread_id, None)
            raise ThreadGone(thread_id) from None
        if isinstance(channel, discord.Thread):
            self._threads[thread_id] = channel
            return ThreadChange(thread_id, name=channel.name, archived=channel.archived, locked=channel.locked)
        return ThreadChange(thread_id, name=getattr(channel, "name", None))

    async def page(self, thread_id: int, *, before: int | None = None, after: int | None = None,
                   limit: int = HISTORY_PAGE_SIZE) -> list[IncomingMessage]:
        channel: discord.abc.Messageable = self._threads.get(thread_id) \
            or self.bot.get_partial_messageable(thread_id)
        try:
            return [incoming(message, with_reactions=True) async for message in channel.history(
                limit=limit, before=discord.Object(before) if before else None,
                after=discord.Object(after) if after is not None else None)]
        except discord.NotFound:
            raise ThreadGone(thread_id) from None
