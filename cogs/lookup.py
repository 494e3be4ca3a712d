"""Lookup commands for everyone: /post latest|search|show, /comments, /stats (thin glue over
bot.lookup and bot.storage.search); /post show's "Open a discussion thread" button for a post that
never got one."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import GENERIC_FAILURE, NO_MENTIONS, ConversationBot, send_reply
from bot.errors import UserFacingError
from bot.lookup import format as fmt
from bot.lookup import search
from bot.lookup.open_thread import CUSTOM_ID_PREFIX, NOT_ALLOWED, can_open_thread, describe, open_thread
from bot.lookup.pagination import COMMENTS_PER_PAGE, Pager
from bot.lookup.query import build_fts_query
from bot.storage.search import comment_page, guild_stats, latest_posts, post_details

log = logging.getLogger(__name__)
NOT_FOUND = ("No post matches that. Start typing a title and pick one of the suggestions, "
             "or use `/post search` to find it.")
# The Open a discussion thread button works as long as its message exists (a dynamic item, found by
# its custom id); the view it was sent with is only kept in memory this long.
VIEW_KEPT_SECONDS = 60.0


def guild_of(interaction: discord.Interaction[ConversationBot]) -> int:
    if interaction.guild_id is None:
        raise UserFacingError("This command only works inside a server.")
    return interaction.guild_id


class CommentPagerView(discord.ui.View):
    """Previous/Next buttons under a /comments answer: only the caller may use them, and they
    are disabled when the pager expires."""

    def __init__(self, cog: Lookup, pager: Pager, origin: discord.Interaction[ConversationBot]) -> None:
        super().__init__(timeout=pager.lifetime)
        self.cog = cog
        self.pager = pager
        self.origin = origin
        self.update_buttons()

    def update_buttons(self) -> None:
        self.previous_page.disabled = not self.pager.has_previous
        self.next_page.disabled = not self.pager.has_next

    async def interaction_check(self, interaction: discord.Interaction[ConversationBot]) -> bool:  # type: ignore[override]
        if not self.pager.may_use(interaction.user.id):
            await interaction.response.send_message(
                "Only the person who ran this `/comments` can turn its pages; run `/comments` yourself "
                "to browse the discussion.", ephemeral=True, allowed_mentions=NO_MENTIONS)
            return False
        if self.pager.expired():
            await interaction.response.send_message(
                "These buttons have expired; run `/comments` again.", ephemeral=True,
                allowed_mentions=NO_MENTIONS)
            return False
        return True

    async def turn(self, interaction: discord.Interaction[ConversationBot], step: int) -> None:
        page = await comment_page(self.cog.bot.database, self.pager.guild_id, self.pager.post_id,
                                         self.pager.target(step), COMMENTS_PER_PAGE)
        if page is None:
            self.stop()
            await interaction.response.edit_message(content="That post is no longer in the archive.", view=None,
                                                    allowed_mentions=NO_MENTIONS)
            return
        self.pager.show(page.page, page.page_count)
        self.update_buttons()
        await interaction.response.edit_message(content=fmt.format_comment_page(page), view=self,
                                                allowed_mentions=NO_MENTIONS)

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction[ConversationBot],
                            button: discord.ui.Button[CommentPagerView]) -> None:
        await self.turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction[ConversationBot],
                        button: discord.ui.Button[CommentPagerView]) -> None:
        await self.turn(interaction, 1)

    async def on_timeout(self) -> None:
        for child in self.children:
            if isinstance(child, discord.ui.Button):
                child.disabled = True
        try:
            await self.origin.edit_original_response(view=self, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.debug("could not disable expired /comments buttons", exc_info=True)

    async def on_error(self, interaction: discord.Interaction[ConversationBot], error: Exception,  # type: ignore[override]
                       item: discord.ui.Item[CommentPagerView]) -> None:
        log.error("a /comments button failed", exc_info=error)
        await send_reply(interaction, GENERIC_FAILURE, ephemeral=True)


def may_open_threads(permissions: discord.Permissions) -> bool:
    """Who may have a post announced for its thread: whoever may start a thread, or an admin."""
    return permissions.create_public_threads or permissions.manage_guild or permissions.administrator


class OpenThreadButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
                       template=re.escape(CUSTOM_ID_PREFIX) + r"(?P<post_id>[0-9]{1,19})"):
    """Under /post show of a post without a thread: announces it in its feed's channel, thread and
    all. The post id is in the custom id, so the button keeps working after a restart."""

    def __init__(self, post_id: int) -> None:
        super().__init__(discord.ui.Button(label="Open a discussion thread", emoji="💬",
                                           style=discord.ButtonStyle.primary,
                                           custom_id=f"{CUSTOM_ID_PREFIX}{post_id}"))
        self.post_id = post_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[ConversationBot],  # type: ignore[override]
                             item: discord.ui.Button[discord.ui.View], match: re.Match[str]) -> OpenThreadButton:
        return cls(int(match["post_id"]))

    async def callback(self, interaction: discord.Interaction[ConversationBot]) -> None:  # type: ignore[override]
        try:
            guild_id = interaction.guild_id
            if guild_id is None or not may_open_threads(interaction.permissions):
                await send_reply(interaction, NOT_ALLOWED)
                return
            bot = interaction.client
            result = await open_thread(bot.database, guild_id, self.post_id, wake=bot.announce_wake.wake)
            text = describe(result, guild_id)
            if result.outcome in ("queued", "under_way", "threaded"):  # nothing left to open: the button goes
                await interaction.response.edit_message(view=None, allowed_mentions=NO_MENTIONS)
            await send_reply(interaction, text)
        except Exception:  # a button's failure is logged and answered, never left as "interaction failed"
            log.exception("the Open a discussion thread button failed")
            await send_reply(interaction, GENERIC_FAILURE)


class Lookup(commands.Cog):
    post = app_commands.Group(name="post", description="Look up the blog's posts", guild_only=True)

    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(OpenThreadButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(OpenThreadButton)

    async def post_autocomplete(self, interaction: discord.Interaction[ConversationBot],
                                current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        choices = await search.title_choices(self.bot.database, interaction.guild_id, current)
        return [app_commands.Choice(name=fmt.choice_name(choice.title), value=str(choice.post_id))
                for choice in choices]

    @post.command(name="latest", description="The newest posts, with links and comment counts")
    @app_commands.describe(count="How many posts to show (1-10, default 5)")
    async def latest(self, interaction: discord.Interaction[ConversationBot],
                     count: app_commands.Range[int, 1, 10] = 5) -> None:
        posts = await latest_posts(self.bot.database, guild_of(interaction), count)
        await interaction.response.send_message(fmt.format_latest(posts), allowed_mentions=NO_MENTIONS)

    @post.command(name="search", description="Search post titles, summaries and comments")
    @app_commands.describe(query='Words to find; "exact phrase", word* for beginnings, -word to leave out')
    async def search_posts(self, interaction: discord.Interaction[ConversationBot],
                           query: app_commands.Range[str, 1, 200]) -> None:
        guild_id = guild_of(interaction)
        fts_query = build_fts_query(query)  # QueryRefused explains itself through the error handler
        await interaction.response.defer(thinking=True)
        results = await search.search(self.bot.database, guild_id, fts_query)
        await interaction.followup.send(fmt.format_search(results, fts_query), allowed_mentions=NO_MENTIONS)

    @post.command(name="show", description="One post: links, comment count, participants, reactions")
    @app_commands.describe(post="Start typing the post's title")
    @app_commands.autocomplete(post=post_autocomplete)
    async def show(self, interaction: discord.Interaction[ConversationBot],
                   post: app_commands.Range[str, 1, 200]) -> None:
        guild_id = guild_of(interaction)
        found = await search.resolve_post(self.bot.database, guild_id, post)
        details = None if found is None else await post_details(self.bot.database, guild_id, found.post_id)
        if details is None:
            raise UserFacingError(NOT_FOUND)
        view = discord.utils.MISSING
        if may_open_threads(interaction.permissions) and await can_open_thread(
                self.bot.database, guild_id, details.post.post_id):
            view = discord.ui.View(timeout=VIEW_KEPT_SECONDS)
            view.add_item(OpenThreadButton(details.post.post_id))
        await interaction.response.send_message(fmt.format_post_details(details), view=view,
                                                allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="comments", description="Read a post's discussion, page by page")
    @app_commands.describe(post="Start typing the post's title", page="Which page to start on",
                           private="Only you see the answer")
    @app_commands.autocomplete(post=post_autocomplete)
    @app_commands.guild_only()
    async def comments(self, interaction: discord.Interaction[ConversationBot],
                       post: app_commands.Range[str, 1, 200], page: app_commands.Range[int, 1, 10_000] = 1,
                       private: bool = False) -> None:
        guild_id = guild_of(interaction)
        found = await search.resolve_post(self.bot.database, guild_id, post)
        shown = None if found is None else await comment_page(
            self.bot.database, guild_id, found.post_id, page, COMMENTS_PER_PAGE)
        if found is None or shown is None:
            raise UserFacingError(NOT_FOUND)
        text = fmt.format_comment_page(shown)
        if shown.page_count <= 1:
            await interaction.response.send_message(text, ephemeral=private, allowed_mentions=NO_MENTIONS)
            return
        pager = Pager(owner_id=interaction.user.id, guild_id=guild_id, post_id=found.post_id,
                      page=shown.page, page_count=shown.page_count,
                      lifetime=self.bot.settings.tuning.pager_lifetime_seconds)
        view = CommentPagerView(self, pager, interaction)
        await interaction.response.send_message(text, view=view, ephemeral=private, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="stats", description="Posts, comments, the most discussed posts and commenters")
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction[ConversationBot]) -> None:
        guild_id = guild_of(interaction)
        await interaction.response.defer(thinking=True)
        now = datetime.now(UTC)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        stats = await guild_stats(self.bot.database, guild_id, month_start)
        await interaction.followup.send(fmt.format_stats(stats), allowed_mentions=NO_MENTIONS)


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(Lookup(bot))
