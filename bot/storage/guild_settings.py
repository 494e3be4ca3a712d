"""Per-guild settings (guild_settings table): the announcement rate (per channel per 10 minutes) and thread auto-archive.

NULL means the guild follows the process-wide default; the feature code resolves the defaults.
"""

from __future__ import annotations

from bot.storage.announcements import GuildAnnounceSettings
from bot.storage.db import Database, to_db_time, utcnow
from bot.storage.sql import Connection


async def guild_override(database: Database, guild_id: int) -> GuildAnnounceSettings | None:
    """The guild's own values (None where it follows the default); None when it has no row."""
    row = await database.fetch_one(
        "SELECT announcements_per_cycle, thread_auto_archive_minutes FROM guild_settings WHERE guild_id = ?",
        (guild_id,),
    )
    if row is None:
        return None
    return GuildAnnounceSettings(row["announcements_per_cycle"], row["thread_auto_archive_minutes"])


async def save_guild_override(database: Database, guild_id: int, *, announcements_per_cycle: int | None,
                              thread_auto_archive_minutes: int | None) -> None:
    """Set the given values; a None leaves that setting as it is."""
    def op(connection: Connection) -> None:
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
