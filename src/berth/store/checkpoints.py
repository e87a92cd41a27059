"""WAL checkpoints on a thread, so no commit on the event loop waits for the disk.

In WAL mode a commit appends to the write-ahead log without syncing (`synchronous=NORMAL`);
the expensive step is the checkpoint, which copies the log into the database file and syncs
both. SQLite runs one inside a commit whenever the log passes 1000 pages, so with writers on
the event loop a commit now and then stalled the whole process for as long as the disk took
(hundreds of milliseconds on a busy machine). The store's writers therefore turn automatic
checkpoints off, and `Checkpointer` runs a passive checkpoint (it never waits for readers or
writers) on a worker thread, on its own connection, at most once per interval after a commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 1.0


class Checkpointer:
    def __init__(self, path: str, *, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._last = float("-inf")
        self._running: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None

    def after_commit(self) -> None:
        """A write committed: start a checkpoint unless one runs or ran within the interval."""
        now = time.monotonic()
        if self._running is None and now - self._last >= self.interval:
            self._last = now
            self._running = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._running is not None:
            await self._running
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(self._checkpoint)
            self.checkpoints += 1
        except sqlite3.Error as error:  # the next one catches up
            log.warning("WAL checkpoint failed: %s", error)
        finally:
            self._running = None

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=1.0
            )
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
