"""Server settings: /settings show|announcements|thread-archive (Manage Server, ephemeral answers)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.announce.admin import get_guild_settings, update_guild_settings
from bot.app import ConversationBot
from bot.lookup import admin_text
from cogs.admin import MANAGE_SERVER, answer, guild_of, needs_manage_server


class ServerSettings(commands.Cog):
    settings = app_commands.Group(name="settings", description="Announcement settings for this server",
                                  guild_only=True, default_permissions=MANAGE_SERVER)

    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot

    @settings.command(name="show", description="This server's announcement settings")
    @needs_manage_server
    async def settings_show(self, interaction: discord.Interaction[ConversationBot]) -> None:
        current = await get_guild_settings(self.bot.database, guild_of(interaction), self.bot.settings)
        await answer(interaction, admin_text.format_guild_settings(current))

    @settings.command(name="announcements", description="At most this many announcements per channel per 10 minutes")
    @app_commands.describe(per_cycle="Announcements per channel per 10 minutes (1-50); the rest wait their turn")
    @needs_manage_server
    async def settings_announcements(self, interaction: discord.Interaction[ConversationBot],
                                     per_cycle: app_commands.Range[int, 1, 50]) -> None:
        changed = await update_guild_settings(self.bot.database, guild_of(interaction), self.bot.settings,
                                              announcements_per_cycle=per_cycle)
        await answer(interaction, "Saved.\n" + admin_text.format_guild_settings(changed))

    @settings.command(name="thread-archive", description="How long new discussion threads stay open when quiet")
    @app_commands.describe(after="Archive a discussion thread after this much inactivity")
    @app_commands.choices(after=[app_commands.Choice(name="1 hour", value=60),
                                 app_commands.Choice(name="24 hours", value=1440),
                                 app_commands.Choice(name="3 days", value=4320),
                                 app_commands.Choice(name="1 week", value=10080)])
    @needs_manage_server
    async def settings_thread_archive(self, interaction: discord.Interaction[ConversationBot],
                                      after: app_commands.Choice[int]) -> None:
        changed = await update_guild_settings(self.bot.database, guild_of(interaction), self.bot.settings,
                                              thread_auto_archive_minutes=after.value)
        await answer(interaction, "Saved; threads created from now on use it.\n"
                     + admin_text.format_guild_settings(changed))


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(ServerSettings(bot))
