"""Indexing new comments into comments_fts, off the hot path of message capture.

The FTS5 index triples the cost of storing a comment. Comments are therefore stored without it
(``fts_indexed = 0``) and indexed here by the writer: within the same transaction whenever the write
queue is idle (so under normal load a comment is searchable as soon as its write returns), and in
chunks of :data:`CHUNK` rows between batches after a burst.
"""

from __future__ import annotations

import sqlite3

CHUNK = 1000


def index_pending_comments(connection: sqlite3.Connection, limit: int | None = CHUNK) -> bool:
    """Index up to ``limit`` (None: all) unindexed comments; True when some remain."""
    bound = -1 if limit is None else limit
    connection.execute(
        "INSERT INTO comments_fts (rowid, clean_content) "
        "SELECT message_id, clean_content FROM comments WHERE fts_indexed = 0 ORDER BY message_id LIMIT ?",
        (bound,))
    connection.execute(
        "UPDATE comments SET fts_indexed = 1 WHERE message_id IN "
        "(SELECT message_id FROM comments WHERE fts_indexed = 0 ORDER BY message_id LIMIT ?)",
        (bound,))
    if limit is None:
        return False
    return connection.execute("SELECT 1 FROM comments WHERE fts_indexed = 0 LIMIT 1").fetchone() is not None
