"""The background worker: runs registered periodic tasks (reconcile jobs, deliver outputs, clean up)
one pass at a time, and drains on shutdown: `stop()` lets the pass in progress finish before returning,
so a shutdown never cuts a provider call and its recorded result apart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Task = Callable[[], Awaitable[object]]  # a result, if any, is ignored
# The shortest time between the starts of two passes, woken or not: `interval=0` (tests) means "as soon
# as possible", not a busy loop, and a stream of wakes (one per webhook delivery, hundreds a second
# under load) makes at most 20 passes a second rather than one after another without end.
MIN_INTERVAL = 0.05


@dataclass
class PeriodicTask:
    name: str
    run: Task


class Worker:
    def __init__(self, interval: float, drain_timeout: float = 30.0) -> None:
        self.interval = interval
        self.drain_timeout = drain_timeout
        self.tasks: list[PeriodicTask] = []
        self.passes = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def register(self, name: str, run: Task) -> None:
        self.tasks.append(PeriodicTask(name, run))

    def wake(self) -> None:
        """Run the next pass now (e.g. after a submission or a webhook gap)."""
        self._wake.set()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._loop_task = asyncio.create_task(self._loop(), name="simpletuner-worker")

    async def stop(self) -> None:
        if self._loop_task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=self.drain_timeout)
        except TimeoutError:
            log.warning("worker did not drain within %.0f s; cancelling", self.drain_timeout)
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._loop_task = None

    async def run_once(self) -> None:
        for task in self.tasks:
            try:
                await task.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One failing task must not stop the others or the loop; the next pass retries.
                log.exception("worker task %s failed", task.name)
        self.passes += 1

    async def _loop(self) -> None:
        clock = asyncio.get_running_loop().time
        while not self._stopping.is_set():
            # Cleared before the pass, not after: a wake() that arrives during the pass runs another.
            self._wake.clear()
            started = clock()
            await self.run_once()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(self.interval, MIN_INTERVAL))
            early = MIN_INTERVAL - (clock() - started)
            if early > 0 and not self._stopping.is_set():
                await asyncio.sleep(early)  # woken right after a pass: the wakes meanwhile join the next
