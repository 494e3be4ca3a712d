"""Whether @everyone can view the channels that hold discussion threads (``channel_visibility``).

The web server serves a thread only when its parent channel is recorded here as public; a channel
without a row is treated as private until the bot has looked at it (see migration 0004).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.storage.db import Database, to_db_time, utcnow
from bot.storage.sql import Connection


async def record_channel_visibility(database: Database, guild_id: int, public_by_channel: Mapping[int, bool]) -> None:
    """Store what the bot saw; an unchanged value is not rewritten (no discussion cache is dropped)."""
    if not public_by_channel:
        return
    now = to_db_time(utcnow())

    def op(connection: Connection) -> None:
        connection.executemany(
            "INSERT INTO channel_visibility (channel_id, guild_id, public, checked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel_id) DO UPDATE SET public = excluded.public, checked_at = excluded.checked_at "
            "WHERE channel_visibility.public IS NULL OR channel_visibility.public <> excluded.public",
            [(channel_id, guild_id, int(public), now) for channel_id, public in public_by_channel.items()])

    await database.write(op)


async def discussion_channel_ids(database: Database) -> dict[int, set[int]]:
    """Per guild, the channels that hold (or held) discussion threads or receive announcements."""
    rows = await database.fetch_all(
        "SELECT guild_id, parent_channel_id AS channel_id FROM threads "
        "UNION SELECT guild_id, channel_id FROM feeds")
    found: dict[int, set[int]] = {}
    for row in rows:
        found.setdefault(int(row["guild_id"]), set()).add(int(row["channel_id"]))
    return found


async def channel_visibility(database: Database, channel_id: int) -> bool | None:
    value = await database.fetch_value("SELECT public FROM channel_visibility WHERE channel_id = ?", (channel_id,))
    return None if value is None else bool(value)
