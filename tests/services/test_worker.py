"""The worker runs its tasks, survives a failing one, wakes on demand and drains on stop."""

from __future__ import annotations

import asyncio

from simpletuner_cloud.services.worker import Worker


async def test_runs_tasks_and_survives_failures() -> None:
    worker = Worker(interval=0.001)
    seen: list[str] = []

    async def good() -> None:
        seen.append("good")

    async def bad() -> None:
        raise RuntimeError("provider down")

    worker.register("bad", bad)
    worker.register("good", good)
    worker.start()
    while worker.passes < 3:
        await asyncio.sleep(0.001)
    await worker.stop()
    assert seen.count("good") >= 3
    assert not worker.running


async def test_stop_drains_the_pass_in_progress() -> None:
    worker = Worker(interval=10)
    started = asyncio.Event()
    finished: list[bool] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append(True)

    worker.register("slow", slow)
    worker.start()
    await started.wait()
    await worker.stop()
    assert finished == [True]


async def test_wake_runs_a_pass_before_the_interval() -> None:
    worker = Worker(interval=3600)
    ran = asyncio.Event()
    count = 0

    async def task() -> None:
        nonlocal count
        count += 1
        if count == 2:
            ran.set()

    worker.register("t", task)
    worker.start()
    while worker.passes < 1:
        await asyncio.sleep(0.001)
    worker.wake()
    await asyncio.wait_for(ran.wait(), timeout=30)  # the wake, not the hour-long interval
    await worker.stop()


async def test_stop_cancels_a_pass_that_will_not_drain() -> None:
    worker = Worker(interval=10, drain_timeout=0.01)

    async def hang() -> None:
        await asyncio.sleep(3600)

    worker.register("hang", hang)
    worker.start()
    await asyncio.sleep(0.01)
    await worker.stop()
    assert not worker.running


async def test_a_wake_during_a_pass_is_not_lost() -> None:
    worker = Worker(interval=3600)
    in_pass = asyncio.Event()
    release = asyncio.Event()
    count = 0

    async def task() -> None:
        nonlocal count
        count += 1
        if count == 1:
            in_pass.set()
            await release.wait()

    worker.register("t", task)
    worker.start()
    await in_pass.wait()
    worker.wake()  # arrives while the first pass runs
    release.set()
    for _ in range(2000):
        if worker.passes >= 2:
            break
        await asyncio.sleep(0.005)
    await worker.stop()
    assert worker.passes >= 2  # the wake ran a second pass instead of waiting out the hour


async def test_interval_zero_does_not_spin() -> None:
    worker = Worker(interval=0)

    async def task() -> None:
        return None

    worker.register("t", task)
    worker.start()
    await asyncio.sleep(0.3)
    await worker.stop()
    assert 1 <= worker.passes <= 10  # at most one pass per MIN_INTERVAL (0.05 s), not thousands
