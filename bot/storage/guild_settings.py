"""Per-guild settings (guild_settings table): announcements per cycle and thread auto-archive.

A guild without a row uses the process-wide defaults from :class:`bot.config.Settings`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bot.config import THREAD_ARCHIVE_CHOICES, Settings
from bot.storage.db import Database, to_db_time, utcnow

ANNOUNCEMENTS_PER_CYCLE_RANGE = (1, 50)


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    announcements_per_cycle: int
    thread_auto_archive_minutes: int
    customised: bool             # False when the guild has no row (process defaults apply)


async def get_guild_settings(database: Database, guild_id: int, defaults: Settings) -> GuildSettings:
    row = await database.fetch_one(
        "SELECT announcements_per_cycle, thread_auto_archive_minutes FROM guild_settings WHERE guild_id = ?",
        (guild_id,),
    )
    if row is None:
        return GuildSettings(guild_id, defaults.announcements_per_cycle, defaults.thread_auto_archive_minutes,
                             customised=False)
    per_cycle, archive = row["announcements_per_cycle"], row["thread_auto_archive_minutes"]
    return GuildSettings(
        guild_id,
        defaults.announcements_per_cycle if per_cycle is None else int(per_cycle),
        defaults.thread_auto_archive_minutes if archive is None else int(archive),
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

    def op(connection: sqlite3.Connection) -> None:
        now = to_db_time(utcnow())
        # A new row leaves the other setting NULL, so it keeps following the environment.
        connection.execute(
            "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, now),
        )
        connection.execute(
            "UPDATE guild_settings SET announcements_per_cycle = coalesce(?, announcements_per_cycle), "
            "thread_auto_archive_minutes = coalesce(?, thread_auto_archive_minutes), updated_at = ? "
            "WHERE guild_id = ?",
            (announcements_per_cycle, thread_auto_archive_minutes, now, guild_id),
        )

    await database.write(op)
    return await get_guild_settings(database, guild_id, defaults)
