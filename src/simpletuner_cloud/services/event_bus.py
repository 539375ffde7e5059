"""Wakes Server-Sent-Event streams and the worker when a job's timeline grows: at once in this
process, and through PostgreSQL `LISTEN` for changes made by another replica. Streams always read
the `job_events` table, so a missed wake-up costs at most one poll interval, never an event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import CHANNEL

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        self._connection: Any = None

    def notify(self) -> None:
        """Something changed: wake every waiter (they re-read the table)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def wait(self, seconds: float) -> None:
        """Until the next change or `seconds`, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def start(self, database: Database) -> None:
        """On PostgreSQL, listen for other replicas' changes on a dedicated connection."""
        if database.dialect != "postgresql":
            return
        try:
            import asyncpg  # the driver SQLAlchemy uses; LISTEN needs its raw connection

            url = database.url.set(drivername="postgresql")
            self._connection = await asyncpg.connect(url.render_as_string(hide_password=False))
            await self._connection.add_listener(CHANNEL, lambda *_: self.notify())
        except Exception:
            log.warning("could not LISTEN for job events on PostgreSQL; streams fall back to polling")
            self._connection = None

    async def stop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
