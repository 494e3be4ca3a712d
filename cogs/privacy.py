"""``/privacy optout|optin|status`` for everyone, and the moderators' "Hide from blog" / "Show on
blog" message context-menu commands (Manage Messages, checked by Discord and again here)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import ConversationBot, has_permission, send_reply
from bot.discussions import privacy
from bot.errors import UserFacingError
from bot.storage.comments import is_opted_out, stored_comment_count


class Privacy(commands.GroupCog, group_name="privacy",
              group_description="Choose whether your messages in post discussions appear on the blog"):
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot
        self.hide_menu = app_commands.ContextMenu(name="Hide from blog", callback=self.hide_from_blog)
        self.show_menu = app_commands.ContextMenu(name="Show on blog", callback=self.show_on_blog)
        for menu in (self.hide_menu, self.show_menu):
            menu.default_permissions = discord.Permissions(manage_messages=True)
            # default_permissions only sets who sees the command by default; server admins can
            # change that, so the permission is checked again (a refusal names it).
            menu.add_check(has_permission("manage_messages"))
            menu.guild_only = True
        super().__init__()

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.hide_menu)
        self.bot.tree.add_command(self.show_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.hide_menu.name, type=self.hide_menu.type)
        self.bot.tree.remove_command(self.show_menu.name, type=self.show_menu.type)

    @app_commands.command(name="optout", description="Stop saving your messages for the blog and erase the saved ones")
    async def optout(self, interaction: discord.Interaction[ConversationBot]) -> None:
        erased = await privacy.opt_out(self.bot.database, interaction.user.id)
        await send_reply(interaction, (
            "Done. Your messages in post discussions are no longer saved or shown on the blog, and "
            f"{erased} saved message{'s were' if erased != 1 else ' was'} erased (a \"deleted\" placeholder "
            "keeps other people's replies in order). Use `/privacy optin` to be included again."))

    @app_commands.command(name="optin", description="Save your new messages in post discussions for the blog again")
    async def optin(self, interaction: discord.Interaction[ConversationBot]) -> None:
        await privacy.opt_in(self.bot.database, interaction.user.id)
        await send_reply(interaction, (
            "Done. Your new messages in post discussions will be saved and shown on the blog. Messages "
            "erased while you were opted out stay erased."))

    @app_commands.command(name="status", description="Whether your messages in post discussions are saved for the blog")
    async def status(self, interaction: discord.Interaction[ConversationBot]) -> None:
        user_id = interaction.user.id
        if await is_opted_out(self.bot.database, user_id):
            text = ("You are opted out: your messages in post discussions are not saved or shown on the blog. "
                    "Use `/privacy optin` to change that.")
        else:
            count = await stored_comment_count(self.bot.database, user_id)
            text = (f"You are opted in: {count} of your messages in post discussions "
                    f"{'is' if count == 1 else 'are'} saved and shown on the blog. "
                    "Use `/privacy optout` to stop that and erase them.")
        await send_reply(interaction, text)

    async def hide_from_blog(self, interaction: discord.Interaction[ConversationBot],
                             message: discord.Message) -> None:
        await self._set_hidden(interaction, message, hidden=True)

    async def show_on_blog(self, interaction: discord.Interaction[ConversationBot],
                           message: discord.Message) -> None:
        await self._set_hidden(interaction, message, hidden=False)

    async def _set_hidden(self, interaction: discord.Interaction[ConversationBot], message: discord.Message,
                          *, hidden: bool) -> None:
        if not await privacy.set_hidden(self.bot.database, message.id, hidden):
            raise UserFacingError("That message is not a saved comment of a post's discussion, so it is not on "
                                  "the blog.")
        if hidden:
            text = "Hidden: this message no longer appears in the blog's comments."
        else:
            text = "Shown: this message appears in the blog's comments again."
        await send_reply(interaction, text)


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(Privacy(bot))
