"""A discussion thread for a post that never got one (``/post show``'s "Open a discussion thread").

A post a feed's filter dropped, or one published before its feed was added, is stored with a
``skipped`` announcement: it has its page on the blog but no thread. On a member's request its
announcement becomes ``queued`` in its feed's channel and the announcer is woken: the post is then
announced, and its thread created, exactly as a new post is (the announcer's crash-safe steps and
per-channel rate apply; nothing here talks to Discord).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.lookup.format import link, safe_text, thread_url
from bot.storage import announcements as store
from bot.storage.announcements import ThreadRequest
from bot.storage.db import Database

CUSTOM_ID_PREFIX = "post:open-thread:"  # + the post id: the button works for as long as the message exists
NOT_ALLOWED = "Opening a discussion thread needs the Create Public Threads or Manage Server permission."


async def can_open_thread(database: Database, guild_id: int, post_id: int) -> bool:
    """Whether the post has no thread and its feed could announce it now (the button is offered)."""
    return (await store.thread_request_state(database, guild_id, post_id)).outcome == "possible"


async def open_thread(database: Database, guild_id: int, post_id: int, *, wake: Callable[[], None]) -> ThreadRequest:
    """Queue the post's announcement (when it can be) and ``wake`` the announcer; where it stands."""
    result = await store.request_thread(database, guild_id, post_id)
    if result.outcome == "queued":
        wake()
    return result


def describe(result: ThreadRequest, guild_id: int) -> str:
    """The one line the member who asked sees."""
    title = f"**{safe_text(result.title, 200)}**"
    where = f"<#{result.channel_id}>" if result.channel_id is not None else "its feed's channel"
    if result.outcome == "queued":
        return (f"{title} is queued for announcement in {where}; its discussion thread opens there as soon as "
                "the channel's announcement rate allows.")
    if result.outcome == "under_way":
        return (f"{title} is already queued for announcement in {where}; its discussion thread opens there as "
                "soon as the channel's announcement rate allows.")
    if result.outcome == "threaded" and result.thread_id is not None:
        return f"{title} already has a discussion thread: {link('Join the discussion', thread_url(guild_id, result.thread_id))}"
    if result.outcome == "failed":
        return f"The announcement of {title} failed; `/feed list` says why, and `/feed retry` tries it again."
    if result.outcome == "no_feed":
        return f"{title} has no feed any more (it was removed), so there is no channel to open its thread in."
    return "That post is no longer in the archive."
