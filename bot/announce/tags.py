"""Which of a forum's existing tags a post gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Discord accepts at most 5 applied tags on a forum post.
MAX_APPLIED_TAGS = 5


@dataclass(frozen=True, slots=True)
class ForumTag:
    id: int
    name: str


def match_forum_tags(categories: Sequence[str], available: Sequence[ForumTag], *,
                     requires_tag: bool) -> tuple[int, ...]:
    """The forum's tags whose names equal one of the categories, ignoring case and surrounding
    space, in the forum's tag order; none are ever created. A forum that requires a tag gets its
    first tag when nothing matched (Discord refuses an untagged post there)."""
    wanted = {" ".join(category.split()).casefold() for category in categories}
    wanted.discard("")
    matched = [tag.id for tag in available if " ".join(tag.name.split()).casefold() in wanted]
    if not matched and requires_tag and available:
        matched = [available[0].id]
    return tuple(matched[:MAX_APPLIED_TAGS])
