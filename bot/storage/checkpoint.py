"""WAL checkpoints on a side thread, so a commit never waits for one.

By default SQLite copies the WAL back into the database file inside the COMMIT that takes the WAL
past 1,000 pages, with an fsync: that held a group of new comments back by 10-17 ms under a
message flood (bench/ingest.py). Here a thread with its own connection runs a PASSIVE checkpoint
every ``every`` seconds instead, which never waits for the writer or the readers and, when there
is nothing to copy, costs a few microseconds. The writer keeps SQLite's automatic checkpoint as a
safety net, at WRITER_AUTOCHECKPOINT_PAGES, should this thread ever fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.25
WRITER_AUTOCHECKPOINT_PAGES = 10_000


class Checkpointer:
    def __init__(self, path: Path, *, every: float = CHECKPOINT_EVERY) -> None:
        self._path = path
        self._every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Blocks until a checkpoint in progress is done: call it from a worker thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.warning("the WAL checkpoint thread could not open %s; SQLite's own checkpoints take over",
                        self._path, exc_info=True)
            return
        failing = False  # a lasting failure is logged once, not four times a second
        try:
            while not self._stopping.wait(self._every):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # e.g. the disk is full: the writer's own checkpoint still works
                    if not failing:
                        log.warning("WAL checkpoints fail (retried every %.2f s, logged once)", self._every,
                                    exc_info=True)
                    failing = True
                    continue
                if failing:
                    log.info("WAL checkpoints work again")
                    failing = False
        finally:
            connection.close()
