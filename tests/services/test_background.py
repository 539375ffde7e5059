"""Background steps: one run beside a block ends with it; at a stop the finished ones are waited
for, the rest cancelled and given their clean-up."""

from __future__ import annotations

import asyncio

from simpletuner_cloud.services.background import beside, finish_or_cancel


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


async def test_work_beside_a_block_runs_during_it_and_is_cancelled_after_it() -> None:
    ticks: list[int] = []
    ended: list[str] = []

    async def tick() -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)
        finally:
            ended.append("tick")

    async with beside(tick(), name="ticker"):
        await asyncio.sleep(0.1)
        assert len(ticks) >= 3 and ended == []
    assert ended == ["tick"]  # cancelled and waited for before the block's caller goes on
    seen = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == seen
