"""What the Discord glue hands to the discussion core, and the comment and thread rows storage keeps:
one frozen dataclass per kind of Discord event or stored row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.model.discord_ids import snowflake_time


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    attachment_id: int
    filename: str
    url: str
    size: int
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Extra:
    """A sticker or a link embed, kept as a link."""

    kind: str  # "sticker" or "embed"
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str  # unicode emoji, or name:id for a custom one
    count: int


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message as Discord shows it now (from MESSAGE_CREATE/UPDATE or from history)."""

    message_id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    author_name: str
    author_avatar_url: str | None
    author_is_bot: bool
    message_type: int
    content: str
    edited_at: datetime | None = None
    reply_to: int | None = None  # the referenced message, only when it is in the same channel
    attachments: tuple[AttachmentInfo, ...] = ()
    extras: tuple[Extra, ...] = ()
    user_names: tuple[tuple[int, str], ...] = ()  # mentioned users: id -> display name
    role_names: tuple[tuple[int, str], ...] = ()
    channel_names: tuple[tuple[int, str], ...] = ()
    # Counts from history (None from the gateway, where MESSAGE_CREATE carries no reactions).
    reactions: tuple[ReactionCount, ...] | None = None

    @property
    def created_at(self) -> datetime:
        """A Discord message was made when its id says (discord.py's ``created_at`` is the same)."""
        return snowflake_time(self.message_id)

    @property
    def has_payload(self) -> bool:
        """Anything to show besides the text: files, stickers, embeds."""
        return bool(self.attachments or self.extras)


@dataclass(frozen=True, slots=True)
class MessageDeletion:
    channel_id: int
    message_ids: frozenset[int]
    guild_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReactionChange:
    """``kind``: "add", "remove", "clear" (every emoji) or "clear_emoji" (one emoji)."""

    kind: str
    channel_id: int
    message_id: int
    emoji: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadChange:
    """A thread's state now; ``None`` fields were not in the payload and stay as they are."""

    thread_id: int
    name: str | None = None
    archived: bool | None = None
    locked: bool | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ThreadState:
    """A tracked thread as stored."""

    thread_id: int
    post_id: int
    guild_id: int
    parent_channel_id: int
    starter_message_id: int | None
    name: str
    archived: bool
    locked: bool
    deleted: bool
    last_reconciled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredComment:
    """A comment row (as the core needs it for catch-up comparisons and tests)."""

    message_id: int
    post_id: int
    thread_id: int | None
    author_id: int | None
    author_name: str
    is_bot: bool
    content: str
    clean_content: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    reply_to: int | None
    hidden: bool
    extras: tuple[Extra, ...] = field(default=())
