"""What the admin commands change about announcements: a guild's own settings (which otherwise
follow the process-wide defaults of :class:`bot.config.Settings`) and retrying failed ones."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import THREAD_ARCHIVE_CHOICES, Settings
from bot.storage import announcements as announcement_store
from bot.storage import guild_settings as settings_store
from bot.storage.db import Database

ANNOUNCEMENTS_PER_CYCLE_RANGE = (1, 50)


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    announcements_per_cycle: int
    thread_auto_archive_minutes: int
    customised: bool             # False when the guild follows the process defaults in both


async def get_guild_settings(database: Database, guild_id: int, defaults: Settings) -> GuildSettings:
    own = await settings_store.guild_override(database, guild_id)
    per_cycle = None if own is None else own.announcements_per_cycle
    archive = None if own is None else own.thread_auto_archive_minutes
    return GuildSettings(
        guild_id,
        defaults.announcements_per_cycle if per_cycle is None else per_cycle,
        defaults.thread_auto_archive_minutes if archive is None else archive,
        customised=per_cycle is not None or archive is not None,
    )


async def update_guild_settings(database: Database, guild_id: int, defaults: Settings, *,
                                announcements_per_cycle: int | None = None,
                                thread_auto_archive_minutes: int | None = None) -> GuildSettings:
    """Change the given settings (others keep their current value) and return the result."""
    low, high = ANNOUNCEMENTS_PER_CYCLE_RANGE
    if announcements_per_cycle is not None and not low <= announcements_per_cycle <= high:
        raise ValueError(f"announcements_per_cycle must be {low}-{high}")
    if thread_auto_archive_minutes is not None and thread_auto_archive_minutes not in THREAD_ARCHIVE_CHOICES:
        raise ValueError(f"thread_auto_archive_minutes must be one of {THREAD_ARCHIVE_CHOICES}")
    await settings_store.save_guild_override(database, guild_id, announcements_per_cycle=announcements_per_cycle,
                                             thread_auto_archive_minutes=thread_auto_archive_minutes)
    return await get_guild_settings(database, guild_id, defaults)


async def retry_failed(database: Database, guild_id: int) -> int:
    """After the admins fixed the cause: the guild's failed announcements are tried again on the
    next cycle, never duplicating a message. Returns how many."""
    return await announcement_store.retry_failed(database, guild_id)
