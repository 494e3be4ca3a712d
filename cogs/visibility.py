"""Which discussion channels @everyone can view: what the web server may show the blog.

A thread is as visible as its parent channel (text, news or forum channel). The bot records each
channel that holds discussions or receives announcements: at every fresh session of a shard, for its guilds (``on_shard_ready``, which also
fills in databases migrated from a version that did not record it), when it announces in a channel
(cogs/_announce_discord.py), and when a channel's overwrites or the @everyone role change. Until a
channel is recorded, the web server treats it as private.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.app import ConversationBot
from bot.discussions.visibility import channels_seen, channels_to_watch

log = logging.getLogger(__name__)


def everyone_can_view(channel: discord.abc.GuildChannel, everyone: discord.Role | None = None) -> bool:
    """Whether @everyone can view ``channel``; ``everyone`` is the guild's @everyone role (fetched)
    when the channel's guild is not in this process's cache (it is on another process's shard)."""
    if everyone is None:
        return channel.permissions_for(channel.guild.default_role).view_channel
    permissions = discord.Permissions(everyone.permissions.value)
    if permissions.administrator:
        return True
    allow, deny = channel.overwrites_for(everyone).pair()
    permissions.handle_overwrite(allow=allow.value, deny=deny.value)
    return permissions.view_channel


class ChannelVisibility(commands.Cog):
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot

    async def refresh(self, guild: discord.Guild, channel_ids: set[int] | None = None) -> None:
        """Record the channels of ``guild`` that hold discussions (all of them, or ``channel_ids``)."""
        if channel_ids is None:
            channel_ids = (await channels_to_watch(self.bot.database)).get(guild.id, set())
        seen: dict[int, bool] = {}
        for channel_id in channel_ids:
            channel = guild.get_channel(channel_id)
            if channel is not None:  # a deleted channel keeps what was last known
                seen[channel_id] = everyone_can_view(channel)
        await channels_seen(self.bot.database, guild.id, seen)

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        known = await channels_to_watch(self.bot.database)
        for guild in self.bot.shard_guilds(shard_id):
            try:
                await self.refresh(guild, known.get(guild.id, set()))
            except Exception:
                log.exception("could not record which channels of guild %s are public", guild.id)

    @commands.Cog.listener()
    async def on_guild_channel_update(self, before: discord.abc.GuildChannel,
                                      after: discord.abc.GuildChannel) -> None:
        if before.overwrites == after.overwrites and before.category_id == after.category_id:
            return
        if isinstance(after, discord.CategoryChannel):  # its synced channels may have changed with it
            await self.refresh(after.guild)
            return
        known = (await channels_to_watch(self.bot.database)).get(after.guild.id, set())
        if after.id in known:
            await self.refresh(after.guild, {after.id})

    @commands.Cog.listener()
    async def on_guild_role_update(self, before: discord.Role, after: discord.Role) -> None:
        if after.is_default() and before.permissions != after.permissions:
            await self.refresh(after.guild)


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(ChannelVisibility(bot))
