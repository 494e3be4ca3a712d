"""The capture rules: which messages become comments, and the search text of a comment."""

from __future__ import annotations

import enum
import re

from bot.model.messages import IncomingMessage
from bot.render.discord_to_html import MentionNames, discord_markdown_to_text

# Message types that are people talking: 0 (default) and 19 (reply). Everything else (joins,
# pins, thread renames, the thread starter reference of type 21, ...) is a system message.
CONVERSATION_MESSAGE_TYPES = frozenset({0, 19})

# One line of words and plain punctuation that starts with a letter: no markdown, no mention, no
# list marker, no entity. Most chat messages look like this, and their clean text is the text
# itself with the spaces tidied; skipping the markdown parser for them keeps the hot path cheap.
_PLAIN_TEXT = re.compile(r"\s*[^\W\d_][^\W_]*(?:[ .,!?'\"%/=][^\W_]*)*[ .,!?'\"%/=]*")
# The same for ASCII text, which an ASCII-only class checks in half the time.
_PLAIN_ASCII = re.compile(r"[A-Za-z][A-Za-z0-9 .,!?'\"%/=]*")


class Verdict(enum.Enum):
    STORE = "store"
    UNTRACKED = "not in a post's thread"
    OWN = "this bot's own message (starter, invitation line, notices)"
    SYSTEM = "a system message"
    NO_CONTENT = "empty content: the Message Content intent is missing"


def verdict(message: IncomingMessage, *, own_user_id: int | None, tracked: bool) -> Verdict:
    """What to do with a message in a channel; opt-outs are checked in the write itself."""
    if not tracked:
        return Verdict.UNTRACKED
    if own_user_id is not None and message.author_id == own_user_id:
        return Verdict.OWN
    if message.message_type not in CONVERSATION_MESSAGE_TYPES:
        return Verdict.SYSTEM
    if looks_like_missing_content_intent(message, own_user_id=own_user_id):
        return Verdict.NO_CONTENT
    return Verdict.STORE


def looks_like_missing_content_intent(message: IncomingMessage, *, own_user_id: int | None) -> bool:
    """Without the Message Content intent Discord blanks other users' text, files and embeds.

    A real message always has at least one of them, so a fully empty one means the intent is off.
    """
    if own_user_id is not None and message.author_id == own_user_id:
        return False
    return not message.content.strip() and not message.has_payload


def clean_text(message: IncomingMessage) -> str:
    """The comment as plain text for search: markdown removed, mentions shown as names."""
    content = message.content
    if content.isascii() and _PLAIN_ASCII.fullmatch(content):
        # No leading space and no line break: the text is already tidy unless spaces repeat or trail.
        return content if "  " not in content and content[-1] != " " else " ".join(content.split())
    if "\n" not in content and _PLAIN_TEXT.fullmatch(content):
        return " ".join(content.split())
    names = MentionNames(
        users=dict(message.user_names),
        roles=dict(message.role_names),
        channels=dict(message.channel_names),
    )
    return discord_markdown_to_text(message.content, names=names)
