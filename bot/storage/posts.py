"""All SQL that stores feed items as posts (``posts``, ``feed_items``) and that INSERTS their
``announcements`` rows.

Rules, in one place:

* A post is unique per guild by its canonical link. An item whose link is already a post (it came
  through another feed, or the feed moved) is linked to that post and never gets a second
  announcement: the code does not even try.
* A new post gets an announcement row in the same write: ``queued`` when it should be announced,
  ``skipped`` otherwise (first fetch beyond the feed's ``backfill``, an old item that surfaced late,
  or beyond the per-poll cap). A ``skipped`` row documents the decision and makes sure the post is
  never announced later.
* A known post whose title, link or summary changed (in the feed that brought it) is updated, and its announcement, if it was
  already sent (``pending``, ``sent`` or ``threaded``), gets ``needs_edit = 1``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.model.posts import Entry
from bot.storage.db import Database, to_db_time
from bot.storage.sql import Connection

_SENT_STATES = ("pending", "sent", "threaded")
_CHUNK = 400  # host parameters per IN (...) list, well under SQLite's limit


def _marks(count: int) -> str:
    return ", ".join("?" * count)


@dataclass(frozen=True, slots=True)
class AnnouncePolicy:
    """Which new posts of one poll get a ``queued`` announcement.

    ``first_fetch``: only the newest ``backfill`` entries. Otherwise every new post, except those
    dated before ``old_before`` (old items surfacing late) and beyond the newest ``max_queued``.
    """

    first_fetch: bool
    backfill: int
    old_before: datetime | None
    max_queued: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    new_posts: int = 0
    queued: int = 0
    skipped: int = 0
    linked: int = 0  # items that turned out to be an existing post (other feed, moved feed)
    updated: int = 0


async def known_identities(database: Database, feed_id: int, identities: Sequence[str]) -> set[str]:
    """Which of ``identities`` the feed has stored already (a read; the rest are new posts)."""
    unique = list(dict.fromkeys(identities))
    known: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        rows = await database.fetch_all(
            f"SELECT identity FROM feed_items WHERE feed_id = ? AND identity IN ({_marks(len(chunk))})",
            (feed_id, *chunk))
        known.update(row["identity"] for row in rows)
    return known


def content_hash(title: str, link: str, summary: str) -> str:
    return hashlib.sha256("\x1f".join((title, link, summary)).encode("utf-8", "surrogatepass")).hexdigest()


def _announced_identities(entries: Sequence[Entry], policy: AnnouncePolicy, new: set[str]) -> set[str]:
    """Identities (among the new ones) whose post gets a ``queued`` announcement."""
    if policy.first_fetch:
        return {entry.identity for entry in entries[: policy.backfill]} & new
    fresh = [
        entry for entry in entries
        if entry.identity in new
        and not (entry.date_known and policy.old_before is not None and entry.published < policy.old_before)
    ]
    return {entry.identity for entry in fresh[: policy.max_queued]}


def store_entries_sync(connection: Connection, *, guild_id: int, feed_id: int, channel_id: int,
                       feed_title: str | None, entries: Sequence[Entry], policy: AnnouncePolicy,
                       now: datetime, filtered_out: frozenset[str] = frozenset()) -> StoreResult:
    """Store one poll's entries (newest first) and their announcement rows; runs in a write op.

    A new post the policy would announce but whose identity is in ``filtered_out`` (the feed's
    filter dropped it) is stored with a ``skipped`` announcement marked ``filtered``."""
    # Two queries for the whole document rather than two per item: this runs on the writer thread,
    # and every Python step there is GIL time the event loop waits for.
    known: dict[str, int | None] = {}
    identities = list(dict.fromkeys(entry.identity for entry in entries))
    for start in range(0, len(identities), _CHUNK):
        chunk = identities[start : start + _CHUNK]
        for row in connection.execute(
            f"SELECT identity, post_id FROM feed_items WHERE feed_id = ? AND identity IN ({_marks(len(chunk))})",
            (feed_id, *chunk),
        ):
            known[row["identity"]] = row["post_id"]
    post_ids = [post_id for post_id in known.values() if post_id is not None]
    hashes: dict[int, str] = {}
    for start in range(0, len(post_ids), _CHUNK):
        chunk_ids = post_ids[start : start + _CHUNK]
        for row in connection.execute(
            f"SELECT id, content_hash FROM posts WHERE id IN ({_marks(len(chunk_ids))})", chunk_ids
        ):
            hashes[int(row["id"])] = row["content_hash"]
    new_identities = {entry.identity for entry in entries} - known.keys()
    announce = _announced_identities(entries, policy, new_identities)
    stamp = to_db_time(now)
    new_posts = queued = skipped = linked = updated = 0
    # Oldest first, so post ids (and the announcement order that follows them) are chronological.
    for entry in reversed(entries):
        if entry.identity in known:
            post_id = known[entry.identity]
            if post_id is None or hashes.get(post_id) == content_hash(entry.title, entry.link, entry.summary):
                continue
            if _update_if_changed(connection, post_id, feed_id, entry, stamp):
                updated += 1
            continue
        known[entry.identity] = None  # a repeated identity inside one document is stored once
        existing = connection.execute(
            "SELECT id FROM posts WHERE guild_id = ? AND canonical_url = ?", (guild_id, entry.link)
        ).fetchone()
        if existing is not None:
            post_id = int(existing["id"])
            linked += 1
            if _update_if_changed(connection, post_id, feed_id, entry, stamp):
                updated += 1
        else:
            post_id = _insert_post(connection, guild_id, feed_id, feed_title, entry, stamp)
            new_posts += 1
            filtered = entry.identity in announce and entry.identity in filtered_out
            state = "queued" if entry.identity in announce and not filtered else "skipped"
            connection.execute(
                "INSERT INTO announcements (post_id, guild_id, channel_id, state, filtered, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (post_id) DO NOTHING",
                (post_id, guild_id, channel_id, state, int(filtered), stamp, stamp),
            )
            if state == "queued":
                queued += 1
            else:
                skipped += 1
        known[entry.identity] = post_id
        connection.execute(
            "INSERT INTO feed_items (feed_id, identity, post_id, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (feed_id, identity) DO UPDATE SET post_id = excluded.post_id",
            (feed_id, entry.identity, post_id, stamp),
        )
    return StoreResult(new_posts, queued, skipped, linked, updated)


def _insert_post(connection: Connection, guild_id: int, feed_id: int, feed_title: str | None,
                 entry: Entry, stamp: str) -> int:
    row = connection.execute(
        "INSERT INTO posts (guild_id, canonical_url, guid, feed_id, feed_title, title, author, summary, "
        "published_at, updated_at, image_url, categories, content_hash, first_seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (guild_id, entry.link, entry.guid, feed_id, feed_title, entry.title, entry.author, entry.summary,
         to_db_time(entry.published), to_db_time(entry.updated) if entry.updated else None, entry.image_url,
         json.dumps(list(entry.categories), ensure_ascii=False),
         content_hash(entry.title, entry.link, entry.summary), stamp),
    ).fetchone()
    return int(row[0])


def _update_if_changed(connection: Connection, post_id: int, feed_id: int, entry: Entry,
                       stamp: str) -> bool:
    row = connection.execute(
        "SELECT guild_id, canonical_url, content_hash, feed_id FROM posts WHERE id = ?", (post_id,)
    ).fetchone()
    if row is None:
        return False
    if row["feed_id"] is None:
        # Its feed was removed: the feed that still carries it takes it over.
        connection.execute("UPDATE posts SET feed_id = ? WHERE id = ?", (feed_id, post_id))
    elif row["feed_id"] != feed_id:
        # Only the feed that brought the post updates it; two feeds with different excerpts of one
        # post would otherwise flip it back and forth on every poll.
        return False
    fresh_hash = content_hash(entry.title, entry.link, entry.summary)
    if row["content_hash"] == fresh_hash:
        return False
    link = entry.link
    if link != row["canonical_url"]:
        clash = connection.execute(
            "SELECT 1 FROM posts WHERE guild_id = ? AND canonical_url = ? AND id != ?",
            (row["guild_id"], link, post_id),
        ).fetchone()
        if clash is not None:
            link = row["canonical_url"]  # another post already owns that link: keep ours
    if link == row["canonical_url"] and row["content_hash"] == content_hash(entry.title, link, entry.summary):
        return False
    connection.execute(
        "UPDATE posts SET canonical_url = ?, title = ?, author = ?, summary = ?, updated_at = ?, "
        "image_url = COALESCE(?, image_url), categories = ?, content_hash = ? WHERE id = ?",
        (link, entry.title, entry.author, entry.summary, to_db_time(entry.updated) if entry.updated else stamp,
         entry.image_url, json.dumps(list(entry.categories), ensure_ascii=False),
         content_hash(entry.title, link, entry.summary), post_id),
    )
    connection.execute(
        "UPDATE announcements SET needs_edit = 1, updated_at = ? WHERE post_id = ? AND state IN (?, ?, ?)",
        (stamp, post_id, *_SENT_STATES),
    )
    return True
