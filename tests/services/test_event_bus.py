"""The event bus wakes waiters in this process at once, and on PostgreSQL a change announced by
another server (another connection's NOTIFY, delivered at its commit) wakes them too."""

from __future__ import annotations

import asyncio

import pytest

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.store import Database
from simpletuner_cloud.store.notify import announce
from tests.store.conftest import drop_schema, postgres_url, unique_schema


async def test_notify_wakes_a_waiter_at_once() -> None:
    bus = EventBus()
    woken: list[bool] = []
    bus.on_change(lambda: woken.append(True))
    waiter = asyncio.create_task(bus.wait(3600))
    await asyncio.sleep(0)
    bus.notify()
    await asyncio.wait_for(waiter, timeout=30)  # not the hour
    assert woken == [True]


@pytest.mark.postgres
async def test_a_notify_from_another_connection_wakes_the_listener_only_at_commit() -> None:
    database = Database(postgres_url(), schema=unique_schema())
    await database.migrate()
    listener = EventBus()
    heard: list[bool] = []
    listener.on_change(lambda: heard.append(True))
    await listener.start(database)
    try:
        assert listener._connection is not None  # LISTEN is really on
        async with database.session() as session:
            await announce(session, "job_x")
            await asyncio.sleep(0.5)
            assert heard == []  # nothing is delivered before the writer commits
            waiter = asyncio.create_task(listener.wait(3600))
            await asyncio.sleep(0)
            await session.commit()
        await asyncio.wait_for(waiter, timeout=30)  # woken by the NOTIFY, not the hour
        assert heard == [True]
    finally:
        await listener.stop()
        await drop_schema(database)
        await database.dispose()
