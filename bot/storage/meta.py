"""Small key/value facts the bot keeps about itself (e.g. the hash of the last synced command tree)."""

from __future__ import annotations

from bot.storage.db import Database
from bot.storage.sql import Connection

COMMAND_TREE_HASH = "command_tree_hash"


async def get_meta(database: Database, key: str) -> str | None:
    value = await database.fetch_value("SELECT value FROM meta WHERE key = ?", (key,))
    return None if value is None else str(value)


async def set_meta(database: Database, key: str, value: str) -> None:
    def op(connection: Connection) -> None:
        connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    await database.write(op)
