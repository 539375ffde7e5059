"""SQLite's WAL checkpoints, off the request path. By default the connection whose commit takes the
write-ahead log past 1,000 pages copies it back into the database file and syncs it, inside that
commit: under a stream of webhooks a group commit then waits about 100 ms every half second. A server
turns that automatic checkpoint off on its own connections (`Database(background_checkpoints=True)`)
and runs this instead: a PASSIVE checkpoint, which never waits for or blocks a reader or a writer,
every `interval` seconds from a thread, with its own connection. Should the log still grow past
`limit` bytes (readers holding it the whole time), a RESTART checkpoint waits for the writers once and
starts the log over. Processes that do not run it (the CLI, migrations) keep SQLite's default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

import anyio

log = logging.getLogger(__name__)
INTERVAL = 1.0  # seconds between checkpoints
WAL_LIMIT = 64 * 1024 * 1024  # bytes of log past which a checkpoint may make writers wait


class Checkpointer:
    def __init__(self, path: Path, *, interval: float = INTERVAL, limit: int = WAL_LIMIT) -> None:
        self.path = path
        self.interval = interval
        self.limit = limit
        self.checkpoints = 0  # done so far (for tests)
        self._connection: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        # Held by every use of the connection and by its close. Canceling the task does not stop a
        # checkpoint already running in its worker thread: without this, the last checkpoint (another
        # thread) could run beside it and close the connection under it, which crashed the process.
        self._lock = threading.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpoints")

    async def stop(self) -> None:
        """Stop, with a last checkpoint that leaves the log empty (TRUNCATE) for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await anyio.to_thread.run_sync(self._last)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await anyio.to_thread.run_sync(self.checkpoint)
            except sqlite3.Error as exc:  # a busy or locked database: the next one catches up
                log.info("SQLite checkpoint skipped: %s", exc)

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """(busy, log frames, frames checkpointed), as `PRAGMA wal_checkpoint` answers."""
        with self._lock:
            return self._checkpoint(mode)

    def _checkpoint(self, mode: str) -> tuple[int, int, int]:
        connection = self._connect()
        row = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        self.checkpoints += 1
        if mode == "PASSIVE" and self._wal_size() > self.limit:
            row = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def _last(self) -> None:
        with self._lock:  # after a checkpoint still running in another thread, never beside it
            try:
                if self.path.exists():
                    self._checkpoint("TRUNCATE")
            except sqlite3.Error as exc:
                log.info("SQLite checkpoint at stop skipped: %s", exc)
            finally:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # Used from one worker thread at a time: every use holds `_lock`.
            self._connection = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        return self._connection

    def _wal_size(self) -> int:
        try:
            return self.path.with_name(self.path.name + "-wal").stat().st_size
        except FileNotFoundError:
            return 0
