"""A server's background steps: work that runs beside another (a lease kept alive while a job step
runs, progress written while an upload streams), and stopping them at shutdown: let them finish for a
while, then cancel the rest. A step cut off this way loses nothing: its lease runs out and another
server (or this one after a restart) resumes it from its durable state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Coroutine
from typing import Any

CANCEL_GRACE_SECONDS = 2.0  # for a cancelled step's own clean-up (releasing its lease, say)


@contextlib.asynccontextmanager
async def beside(work: Coroutine[Any, Any, None], *, name: str | None = None) -> AsyncIterator[None]:
    """Run `work` as a task while the block runs; cancel it (and wait for it) when the block ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def finish_or_cancel(tasks: Collection[asyncio.Task[None]], drain_seconds: float) -> None:
    """Wait up to `drain_seconds` for `tasks`, cancel those still running, and give them a moment."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
