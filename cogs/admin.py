"""Feed administration: /feed add|remove|list|poll|pause|resume|retry|test|filter (/settings: server_settings).

Manage Server is required twice: ``default_permissions`` hides the commands from other members,
and a runtime check refuses them anyway (a server can override who sees a command). Every answer
is ephemeral and mentions nobody.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.announce.admin import retry_failed
from bot.app import NO_MENTIONS, ConversationBot, has_permission
from bot.errors import UserFacingError
from bot.feeds import registry, websub
from bot.feeds.errors import FeedError
from bot.feeds.filters import FilterError
from bot.feeds.scheduler import preview_feed
from bot.lookup import admin_text
from bot.lookup.format import fit_lines, safe_text
from bot.model.ids import parse_id
from bot.model.posts import ChannelKind
from bot.storage.announcements import failed_announcements
from bot.storage.feeds import Feed, get_feed, list_feeds

log = logging.getLogger(__name__)
MANAGE_SERVER = discord.Permissions(manage_guild=True)
THREAD_PERMISSIONS = ("send_messages", "embed_links", "create_public_threads", "send_messages_in_threads")
NO_FEED = "There is no such feed in this server; `/feed list` shows them."


def _has_manage_server(interaction: discord.Interaction[ConversationBot]) -> bool:
    permissions = interaction.permissions
    return interaction.guild_id is not None and (permissions.manage_guild or permissions.administrator)


# The runtime half of the permission rule. A refusal is a MissingPermissions, which the central
# error handler answers privately with "You need the Manage Server permission..." (Discord's own
# name for it; has_permissions would say "Manage Guild").
needs_manage_server = app_commands.check(has_permission("manage_guild"))


async def answer(interaction: discord.Interaction[ConversationBot], text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


def guild_of(interaction: discord.Interaction[ConversationBot]) -> int:
    if interaction.guild_id is None:
        raise UserFacingError("This command only works inside a server.")
    return interaction.guild_id


def channel_kind(channel: discord.TextChannel | discord.ForumChannel) -> ChannelKind:
    if isinstance(channel, discord.ForumChannel):
        return "forum"
    return "news" if channel.is_news() else "text"


def missing_channel_permissions(channel: discord.TextChannel | discord.ForumChannel) -> list[str]:
    me = channel.guild.me
    if me is None:
        return []
    granted = channel.permissions_for(me)
    wanted = ("send_messages", "embed_links") if isinstance(channel, discord.ForumChannel) else THREAD_PERMISSIONS
    return [name.replace("_", " ").title() for name in wanted if not getattr(granted, name)]


class Admin(commands.Cog):
    feed = app_commands.Group(name="feed", description="Manage the blog feeds this server follows",
                              guild_only=True, default_permissions=MANAGE_SERVER)

    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot

    async def guild_feed(self, interaction: discord.Interaction[ConversationBot], reference: str) -> Feed:
        """The feed an option names (its id from autocomplete, or its URL), only in this guild."""
        guild_id = guild_of(interaction)
        reference = reference.strip().lstrip("#")
        found = None
        feed_id = parse_id(reference)
        if feed_id is not None:
            found = await get_feed(self.bot.database, feed_id)
        if found is None and reference.lower().startswith(("http://", "https://")):
            found = await registry.find_feed(self.bot.database, guild_id, reference)
        if found is None or found.guild_id != guild_id:
            raise UserFacingError(NO_FEED)
        return found

    async def feed_autocomplete(self, interaction: discord.Interaction[ConversationBot],
                                current: str) -> list[app_commands.Choice[str]]:
        # Autocomplete runs no checks: feed addresses are shown to admins only.
        if interaction.guild_id is None or not _has_manage_server(interaction):
            return []
        typed = current.strip().lower()
        choices = []
        for status in await list_feeds(self.bot.database, interaction.guild_id):
            label = admin_text.choice_label(status.feed)
            if typed in label.lower():
                choices.append(app_commands.Choice(name=label, value=str(status.feed.id)))
        return choices[:25]

    @feed.command(name="add", description="Follow a blog feed: new posts are announced in a channel")
    @app_commands.describe(url="The feed address (RSS, Atom or JSON Feed)", channel="Where to announce posts",
                           backfill="How many of the feed's current posts to announce now (default 1)",
                           ping_role="A role to ping with each new post")
    @needs_manage_server
    async def feed_add(self, interaction: discord.Interaction[ConversationBot],
                       url: app_commands.Range[str, 1, 2000],
                       channel: discord.TextChannel | discord.ForumChannel,
                       backfill: app_commands.Range[int, 0, 20] = 1,
                       ping_role: discord.Role | None = None) -> None:
        guild_id = guild_of(interaction)
        existing = await registry.find_feed(self.bot.database, guild_id, url) if _looks_like_url(url) else None
        if existing is not None:
            raise UserFacingError(f"That feed is already followed here (feed #{existing.id}, announcing in "
                                  f"<#{existing.channel_id}>); `/feed remove` it first to move it.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            preview = await preview_feed(self.bot.feed_session, url.strip(),
                                         allow_private=self.bot.settings.allow_private_feeds)
        except FeedError as error:
            raise UserFacingError(f"Could not add that feed: {error.message}\nNothing was saved.") from error
        saved = await registry.register_feed(
            self.bot.database, guild_id=guild_id, url=preview.moved_to or url.strip(), channel_id=channel.id,
            channel_kind=channel_kind(channel), backfill=backfill,
            ping_role_id=ping_role.id if ping_role is not None else None)
        warnings = []
        missing = missing_channel_permissions(channel)
        if missing:
            warnings.append(f"I am missing {', '.join(missing)} in <#{channel.id}>; announcements there will "
                            "fail until I get them.")
        await answer(interaction, admin_text.format_feed_added(
            saved, preview, channel_id=channel.id, backfill=backfill,
            ping_role_id=ping_role.id if ping_role is not None else None, warnings=warnings))

    @feed.command(name="remove", description="Stop following a feed (its posts and discussions stay)")
    @app_commands.describe(feed="The feed to remove")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_remove(self, interaction: discord.Interaction[ConversationBot], feed: str) -> None:
        found = await self.guild_feed(interaction, feed)
        if not await registry.remove_feed(self.bot.database, guild_id=found.guild_id, feed_id=found.id):
            raise UserFacingError(NO_FEED)
        await answer(interaction, f"Removed **{admin_text.feed_label(found)}**. Its posts and their discussions "
                                  "stay in the archive.")

    @feed.command(name="list", description="Every feed with its status, and failed announcements")
    @needs_manage_server
    async def feed_list(self, interaction: discord.Interaction[ConversationBot]) -> None:
        guild_id = guild_of(interaction)
        statuses = await list_feeds(self.bot.database, guild_id)
        failures = await failed_announcements(self.bot.database, guild_id, limit=10)
        filters = await registry.guild_filters(self.bot.database, guild_id)
        push = await websub.subscriptions_for_guild(self.bot.database, guild_id)
        await answer(interaction, admin_text.format_feed_list(statuses, failures, filters, push,
                                                              push_enabled=self.bot.settings.websub_enabled))

    @feed.command(name="poll", description="Check a feed (or every feed) for new posts now")
    @app_commands.describe(feed="The feed to poll; leave empty for all of them")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_poll(self, interaction: discord.Interaction[ConversationBot], feed: str | None = None) -> None:
        guild_id = guild_of(interaction)
        if feed is not None:
            targets = [await self.guild_feed(interaction, feed)]
        else:
            targets = [status.feed for status in await list_feeds(self.bot.database, guild_id)]
            targets = [target for target in targets if not target.paused]
        if not targets:
            raise UserFacingError("There is no active feed to poll; `/feed list` shows them.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        scheduler = self.bot.feed_scheduler  # the loop's own: a feed it is polling is not fetched twice
        limit = asyncio.Semaphore(max(1, self.bot.settings.feed_concurrency))

        async def poll(target: Feed) -> str:
            async with limit:
                return admin_text.format_poll_outcome(target, await scheduler.poll_feed(target.id))

        lines = await asyncio.gather(*(poll(target) for target in targets))
        await answer(interaction, fit_lines("**Polled now**", list(lines), "…and {left} more."))

    @feed.command(name="pause", description="Stop polling a feed until it is resumed")
    @app_commands.describe(feed="The feed to pause")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_pause(self, interaction: discord.Interaction[ConversationBot], feed: str) -> None:
        found = await self.guild_feed(interaction, feed)
        await registry.pause_feed(self.bot.database, found.id)
        await answer(interaction, f"Paused **{admin_text.feed_label(found)}**; `/feed resume` starts it again.")

    @feed.command(name="resume", description="Start polling a paused or disabled feed again")
    @app_commands.describe(feed="The feed to resume")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_resume(self, interaction: discord.Interaction[ConversationBot], feed: str) -> None:
        found = await self.guild_feed(interaction, feed)
        extra = ""
        if await registry.resume_feed(self.bot.database, found):
            extra = " It had been disabled after repeated failures; its failure count was reset."
        await answer(interaction, f"Resumed **{admin_text.feed_label(found)}**; it is polled on the next cycle."
                                  + extra)

    @feed.command(name="retry", description="Try failed announcements again (after fixing what /feed list says)")
    @needs_manage_server
    async def feed_retry(self, interaction: discord.Interaction[ConversationBot]) -> None:
        count = await retry_failed(self.bot.database, guild_of(interaction))
        if count == 0:
            await answer(interaction, "No failed announcements to retry.")
            return
        self.bot.announce_wake.wake()
        await answer(interaction, f"Trying {count} failed announcement{'s' if count != 1 else ''} again now "
                                  "(at the channel's announcement rate); nothing is posted twice.")

    @feed.command(name="test", description="Dry run of a feed address, or of a followed feed's filter")
    @app_commands.describe(url="A feed address to try: shows what it would announce, saving nothing",
                           feed="A followed feed: which of its 10 newest posts its filter keeps and drops")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_test(self, interaction: discord.Interaction[ConversationBot],
                        url: app_commands.Range[str, 1, 2000] | None = None, feed: str | None = None) -> None:
        guild_of(interaction)
        if feed is not None:
            found = await self.guild_feed(interaction, feed)
            described, verdicts = await registry.try_filter(self.bot.database, found.id)
            await answer(interaction, admin_text.format_filter_test(found, described, verdicts))
            return
        if url is None:
            raise UserFacingError("Give `url` (a feed address to try) or `feed` (a followed feed's filter).")
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            preview = await preview_feed(self.bot.feed_session, url.strip(),
                                         allow_private=self.bot.settings.allow_private_feeds)
        except FeedError as error:
            raise UserFacingError(f"That feed cannot be read: {error.message}") from error
        await answer(interaction, admin_text.format_feed_test(preview))

    @feed.command(name="filter", description="Announce only a feed's posts that match (words or /regex/)")
    @app_commands.describe(feed="The feed to filter",
                           include="Announce only posts matching: words (comma or space separated) or /regex/",
                           exclude="Never announce posts matching: words (comma or space separated) or /regex/",
                           clear="Remove the filter: every new post is announced again")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @needs_manage_server
    async def feed_filter(self, interaction: discord.Interaction[ConversationBot], feed: str,
                          include: app_commands.Range[str, 1, 300] | None = None,
                          exclude: app_commands.Range[str, 1, 300] | None = None, clear: bool = False) -> None:
        found = await self.guild_feed(interaction, feed)
        label = admin_text.feed_label(found)
        if not clear and include is None and exclude is None:
            current = (await registry.guild_filters(self.bot.database, found.guild_id)).get(found.id, "none")
            await answer(interaction, f"**{label}**: filter {safe_text(current, 900)}. Give `include` "
                                      "and/or `exclude` to set it, `clear:true` to remove it.")
            return
        try:
            saved = await registry.set_filter(self.bot.database, found.id, None if clear else include,
                                              None if clear else exclude)
        except FilterError as error:
            raise UserFacingError(f"Filter not saved: {error}.") from error
        if saved.empty:
            await answer(interaction, f"**{label}**: no filter; every new post is announced.")
            return
        await answer(interaction, f"**{label}**: filter {safe_text(saved.describe(), 900)}. New posts "
                                  "it drops are stored but not announced; `/feed test feed:` shows its effect.")


# discord.py offers forum *and* media channels for a ForumChannel parameter; announcements go to
# text, announcement or forum channels only (media channels are not in Discord's API spec here).
Admin.feed_add._params["channel"].channel_types = [
    discord.ChannelType.text, discord.ChannelType.news, discord.ChannelType.forum]


def _looks_like_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(Admin(bot))
