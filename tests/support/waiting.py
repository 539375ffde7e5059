"""Waiting for background work (a job run, a webhook delivery, a log line) without guessing how long
it takes: poll until the condition holds, up to a deadline generous enough for a loaded CI machine.
The wait ends as soon as the condition holds, so the deadline only shows when something is wrong."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_SECONDS = 30.0


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.01,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call (and await, if async) `probe()` until it returns something truthy and return that; fail
    after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what} did not happen within {timeout:g} s")
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    *,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.01,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """`eventually` for synchronous code (a thread-served app, a child process)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what} did not happen within {timeout:g} s")
        time.sleep(interval)
