"""Stopping a server's background steps: let them finish for a while, then cancel the rest. A step cut
off this way loses nothing: its lease runs out and another server (or this one after a restart)
resumes it from its durable state."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

CANCEL_GRACE_SECONDS = 2.0  # for a cancelled step's own clean-up (releasing its lease, say)


async def finish_or_cancel(tasks: Collection[asyncio.Task[None]], drain_seconds: float) -> None:
    """Wait up to `drain_seconds` for `tasks`, cancel those still running, and give them a moment."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
