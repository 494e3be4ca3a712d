"""A member's choice about their comments, and a moderator's choice about one comment: each is one
write through the writer, done before the command answers."""

from __future__ import annotations

from bot.storage import comments as store
from bot.storage.db import Database, utcnow


async def opt_out(database: Database, user_id: int) -> int:
    """Stop saving the user's messages and erase the saved ones (tombstones keep replies in
    order). Returns how many were erased."""
    return await database.write(store.set_opted_out(user_id, True, utcnow()))


async def opt_in(database: Database, user_id: int) -> None:
    """Save the user's new messages again (the erased ones stay erased)."""
    await database.write(store.set_opted_out(user_id, False, utcnow()))


async def set_hidden(database: Database, message_id: int, hidden: bool) -> bool:
    """Hide a comment from the blog (or show it again). False when it is not a stored comment."""
    return await database.write(store.set_hidden(message_id, hidden))
