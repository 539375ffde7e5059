"""The live feed never passes an id that may still commit: on PostgreSQL a transaction that took
id N can commit after one that took N+1, and the feed (and a client resuming with `Last-Event-ID`)
must still deliver N, in id order. A gap that never fills (a rollback) is passed after the settle
time; on SQLite (one writer) gaps never hold the feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_events import job_events, start_position
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.tables import JobEventRow, utcnow
from tests.store.conftest import drop_schema, postgres_url, unique_schema


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    database = Database(postgres_url(), schema=unique_schema())
    await database.migrate()
    try:
        yield database
    finally:
        await drop_schema(database)
        await database.dispose()


async def new_job(database: Database) -> str:
    async with database.session() as session:
        job, _ = await repo.create_job(
            session, config_name="portrait", hardware="l40s", model="simpletuner/advanced-trainer"
        )
        await session.commit()
    return job.id


async def add(database: Database, job_id: str, message: str) -> int:
    async with database.session() as session:
        event = await repo.add_event(session, job_id, "note", message=message)
        await session.commit()
    return event.id


async def read(database: Database, after: int, job_id: str | None = None, **kwargs: Any) -> list[int]:
    """What a client resuming after `after` gets before the stream closes (`once`)."""
    stream = job_events(database, EventBus(), job_id=job_id, after=after, once=True, **kwargs)
    return [int(message["id"]) async for message in stream]


async def last_id(database: Database) -> int:
    return max(await read(database, 0))


class SteppedBus(EventBus):
    """Lets the test run the stream one read at a time: every wait reports its length and blocks
    until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: asyncio.Queue[float] = asyncio.Queue()
        self.go = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        await self.waits.put(seconds)
        await self.go.wait()
        self.go.clear()

    async def next_read(self) -> float:
        """Release the stream for one more read; the length of the wait it then chose."""
        self.go.set()
        return await asyncio.wait_for(self.waits.get(), timeout=30)


@pytest.mark.postgres
async def test_an_id_committed_after_a_higher_one_is_still_delivered_in_order(pg: Database) -> None:
    job_id = await new_job(pg)
    base = await last_id(pg)
    bus = SteppedBus()
    got: list[int] = []

    async def consume() -> None:
        async for message in job_events(pg, bus, job_id=None, after=base):
            got.append(int(message["id"]))

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(bus.waits.get(), timeout=30)  # read once: nothing yet
        async with pg.session() as a:  # A takes an id and holds its transaction open
            held = await repo.add_event(a, job_id, "note", message="A")
            later = await add(pg, job_id, "B")  # B takes the next id and commits first
            assert later == held.id + 1
            wait = await bus.next_read()
            assert got == []  # the gap holds the feed back
            assert wait < 1.0  # and it looks again soon rather than after the idle interval
            assert await read(pg, base) == []  # nor does a client resuming there skip A's id
            await a.commit()
        await bus.next_read()
        assert got == [held.id, later]
        assert await read(pg, base) == [held.id, later]
    finally:
        consumer.cancel()


@pytest.mark.postgres
async def test_a_gap_that_never_fills_is_passed_after_the_settle_time(pg: Database) -> None:
    job_id = await new_job(pg)
    base = await last_id(pg)
    async with pg.session() as a:
        rolled_back = (await repo.add_event(a, job_id, "note", message="A")).id
        later = await add(pg, job_id, "B")
        await a.rollback()
    assert await read(pg, base) == []
    assert await read(pg, base, settle=3600) == []
    later_clock = utcnow() + timedelta(hours=1)  # past any settle time
    assert await read(pg, base, clock=lambda: later_clock) == [later]
    assert await read(pg, base, settle=0) == [later]
    assert later == rolled_back + 1


@pytest.mark.postgres
async def test_a_job_feed_waits_on_any_job_gap_and_skips_other_jobs_events(pg: Database) -> None:
    mine, other = await new_job(pg), await new_job(pg)
    base = await last_id(pg)
    first = await add(pg, mine, "mine 1")
    between = await add(pg, other, "other")
    second = await add(pg, mine, "mine 2")
    assert await read(pg, base, mine) == [first, second]  # the other job's id is no gap
    async with pg.session() as a:  # the other job's open transaction holds this job's feed too
        held = (await repo.add_event(a, other, "note", message="other, held")).id
        third = await add(pg, mine, "mine 3")
        assert await read(pg, second, mine) == []
        await a.commit()
    assert await read(pg, second, mine) == [third]
    assert await read(pg, second) == [held, third]
    assert between < second


@pytest.mark.postgres
async def test_a_new_all_jobs_stream_starts_before_an_id_still_open(pg: Database) -> None:
    job_id = await new_job(pg)
    async with pg.session() as a:
        held = (await repo.add_event(a, job_id, "note", message="A")).id
        later = await add(pg, job_id, "B")
        start = await start_position(pg, None, None)
        await a.commit()
    assert await read(pg, start) == [held, later]


async def test_sqlite_gaps_never_hold_the_feed(tmp_path: Path) -> None:
    """One writer: a visible id means every lower one is settled, so a deleted job's events never
    delay what follows (a rolled back insert leaves no gap there: the next insert takes its id)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await database.migrate()
    try:
        gone, kept = await new_job(database), await new_job(database)
        base = await last_id(database)
        deleted = await add(database, gone, "deleted with its job")
        after_gap = await add(database, kept, "after the gap")
        async with database.session() as session:
            await session.execute(delete(JobEventRow).where(JobEventRow.id == deleted))
            await session.commit()
        never_clock = datetime(2000, 1, 1).astimezone()
        assert await read(database, base, clock=lambda: never_clock) == [after_gap]
    finally:
        await database.dispose()
