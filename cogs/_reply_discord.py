"""Replying from the blog, Discord side: :class:`bot.web.replies.ReplyPoster` over discord.py.

A reader's comment is posted through one webhook per parent channel (created by the bot once and
reused), executed into the thread with the reader's name and avatar, pinging nobody. Whether the
reader may post there is decided as Discord would: their member record (roles, timeout) and the
channel's overwrites, computed by discord.py's ``permissions_for``.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.app import ConversationBot
from bot.web.replies import Reader, ReplyRefused

log = logging.getLogger(__name__)
WEBHOOK_NAME = "Blog replies"
FALLBACK_NAME = "Blog reader"
INVALID_FORM_BODY = 50035


class DiscordReplies:
    def __init__(self, bot: ConversationBot) -> None:
        self._bot = bot
        self._webhooks: dict[int, discord.Webhook] = {}
        self._webhook_lock = asyncio.Lock()

    @property
    def application_id(self) -> int | None:
        return self._bot.application_id

    def _not_member(self) -> ReplyRefused:
        invite = self._bot.settings.discord_invite_url
        where = f" Join it first: {invite}" if invite else " Join the Discord server first."
        return ReplyRefused(403, "not_member", "You are not a member of the blog's Discord server." + where)

    async def post(self, *, guild_id: int, thread_id: int, reader: Reader, content: str) -> int:
        guild = self._bot.get_guild(guild_id)
        if guild is None:
            raise ReplyRefused(503, "unavailable", "The bot cannot see the Discord server right now.")
        try:
            member = await guild.fetch_member(reader.user_id)
        except discord.NotFound:
            raise self._not_member() from None
        except discord.HTTPException as error:
            raise _unavailable(error) from None
        if member.is_timed_out():
            until = member.timed_out_until
            when = f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""
            raise ReplyRefused(403, "timed_out", f"You are timed out on the Discord server{when}.")
        thread = guild.get_thread(thread_id)
        if thread is None:
            try:
                channel = await self._bot.fetch_channel(thread_id)
            except discord.HTTPException as error:
                raise _unavailable(error) from None
            if not isinstance(channel, discord.Thread):
                raise ReplyRefused(404, "no_thread", "This post's discussion thread is gone.")
            thread = channel
        parent = thread.parent
        if not isinstance(parent, discord.TextChannel | discord.ForumChannel):
            raise ReplyRefused(503, "unavailable", "The bot cannot see the discussion's channel right now.")
        allowed = parent.permissions_for(member)
        if not (allowed.view_channel and allowed.send_messages_in_threads):
            raise ReplyRefused(403, "no_permission", "You may not send messages in this discussion on Discord.")
        if thread.locked and not allowed.manage_threads:
            raise ReplyRefused(403, "locked", "This discussion is locked; no new comments.")
        if thread.archived:
            try:
                await thread.edit(archived=False)
            except discord.HTTPException:
                raise ReplyRefused(403, "locked", "This discussion is archived and the bot cannot reopen it.") from None
        webhook = await self._webhook(parent)
        try:
            try:
                message = await self._send(webhook, thread, content, reader.name[:80], reader)
            except discord.HTTPException as error:
                if error.status != 400 or error.code != INVALID_FORM_BODY:
                    raise
                # Discord refuses some webhook names ("discord", "clyde" in them): the comment still
                # goes out, under a neutral name; the blog shows the reader's own name.
                message = await self._send(webhook, thread, content, FALLBACK_NAME, reader)
        except discord.NotFound:
            self._webhooks.pop(parent.id, None)  # deleted by someone: made again next time
            raise ReplyRefused(503, "unavailable", "The bot's webhook was deleted; try again.") from None
        except discord.HTTPException as error:
            raise _unavailable(error) from None
        return message.id

    @staticmethod
    async def _send(webhook: discord.Webhook, thread: discord.Thread, content: str, username: str,
                    reader: Reader) -> discord.WebhookMessage:
        return await webhook.send(content, username=username, avatar_url=reader.avatar_url or discord.utils.MISSING,
                                  allowed_mentions=discord.AllowedMentions.none(), thread=thread, wait=True)

    async def delete(self, *, thread_id: int, message_id: int) -> None:
        channel = self._bot.get_channel(thread_id) or await self._bot.fetch_channel(thread_id)
        parent = getattr(channel, "parent", None)
        if not isinstance(parent, discord.TextChannel | discord.ForumChannel):
            raise ReplyRefused(404, "no_thread", "This post's discussion thread is gone.")
        webhook = await self._webhook(parent)
        try:
            await webhook.delete_message(message_id, thread=discord.Object(thread_id))
        except discord.NotFound:
            return  # deleted already
        except discord.HTTPException as error:
            raise _unavailable(error) from None

    async def _webhook(self, parent: discord.TextChannel | discord.ForumChannel) -> discord.Webhook:
        async with self._webhook_lock:
            webhook = self._webhooks.get(parent.id)
            if webhook is not None:
                return webhook
            me = self._bot.user
            try:
                existing = [hook for hook in await parent.webhooks()
                            if hook.user is not None and me is not None and hook.user.id == me.id
                            and hook.name == WEBHOOK_NAME and hook.token]
                webhook = existing[0] if existing else await parent.create_webhook(
                    name=WEBHOOK_NAME, reason="comments posted from the blog")
            except discord.Forbidden:
                log.warning("cannot post blog replies in #%s: the bot needs Manage Webhooks there", parent.name)
                raise ReplyRefused(503, "unavailable", "The bot may not post comments from the blog here yet "
                                                       "(it needs the Manage Webhooks permission).") from None
            except discord.HTTPException as error:
                raise _unavailable(error) from None
            self._webhooks[parent.id] = webhook
            return webhook


def _unavailable(error: discord.HTTPException) -> ReplyRefused:
    log.warning("replying from the blog failed: %s %s", error.status, error.text)
    if error.code == 160005 or error.code == 50083:  # thread locked / archived
        return ReplyRefused(403, "locked", "This discussion is locked; no new comments.")
    return ReplyRefused(503, "unavailable", "Discord did not take the comment; try again in a moment.")
