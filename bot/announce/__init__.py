"""Announcing posts in Discord: the embed, forum tags, the per-cycle choice and the crash-safe
state machine. No discord import: the Discord side is the :class:`~bot.announce.machine.DiscordPort`
the announcements cog implements."""
