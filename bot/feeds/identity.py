"""Item identity: what makes one feed item the same item on the next poll.

The guid is used only when every item in the document has a non-empty, unique one (empty and
repeated guids are common, e.g. WordPress behind caches); otherwise the canonical link; otherwise
the title plus the date. Identities carry a prefix saying which rule produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawIdentity:
    """The parts an identity is chosen from, per item."""

    guid: str | None
    link: str | None
    title: str
    date: str | None


def guids_usable(items: Sequence[RawIdentity]) -> bool:
    guids = [(item.guid or "").strip() for item in items]
    return bool(guids) and all(guids) and len(set(guids)) == len(guids)


def assign_identities(items: Sequence[RawIdentity]) -> list[str | None]:
    """One identity per item (None when an item has nothing to be identified by)."""
    use_guid = guids_usable(items)
    identities: list[str | None] = []
    for item in items:
        if use_guid and item.guid:
            identities.append("guid:" + item.guid.strip())
        elif item.link:
            identities.append("link:" + item.link)
        elif item.title.strip() or item.date:
            identities.append(f"title:{item.title.strip()}|{item.date or ''}")
        else:
            identities.append(None)
    return identities
