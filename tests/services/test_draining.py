"""Stopping background steps: the finished ones are waited for, the rest cancelled and given their
clean-up."""

from __future__ import annotations

import asyncio

from simpletuner_cloud.services.draining import finish_or_cancel


async def test_steps_that_finish_in_time_finish_and_the_rest_are_cancelled_with_their_clean_up() -> None:
    cleaned: list[str] = []

    async def step(name: str, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            cleaned.append(name)

    quick = asyncio.create_task(step("quick", 0.01))
    slow = asyncio.create_task(step("slow", 60))
    await finish_or_cancel([quick, slow], drain_seconds=0.5)
    assert quick.done() and not quick.cancelled()
    assert slow.cancelled()
    assert sorted(cleaned) == ["quick", "slow"]


async def test_nothing_to_stop_returns_at_once() -> None:
    await asyncio.wait_for(finish_or_cancel([], drain_seconds=60), timeout=1)
