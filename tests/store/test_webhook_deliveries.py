"""Webhook deliveries are recorded once per `webhook-id`, even when redeliveries race."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from simpletuner_cloud.store import Database
from simpletuner_cloud.store.webhook_deliveries import (
    get_delivery,
    list_deliveries,
    mark_delivery,
    record_delivery,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def test_first_delivery_is_new_and_a_redelivery_is_not(db: Database) -> None:
    async with db.session() as session:
        assert await record_delivery(
            session,
            "msg_1",
            job_id="job_x",
            event="completed",
            status="succeeded",
            body_sha256="ab" * 32,
            received_at=T0,
        )
        await session.commit()
    async with db.session() as session:
        assert not await record_delivery(session, "msg_1", status="failed", accepted=False)
        await session.commit()
    async with db.session() as session:
        stored = await get_delivery(session, "msg_1")
    assert stored is not None
    assert (stored.job_id, stored.event, stored.status, stored.accepted, stored.received_at) == (
        "job_x",
        "completed",
        "succeeded",
        True,
        T0,
    )


async def test_mark_delivery_and_list(db: Database) -> None:
    async with db.session() as session:
        await record_delivery(session, "msg_a")
        await record_delivery(session, "msg_b", job_id="job_1")
        assert await mark_delivery(session, "msg_a", accepted=False, reason="unknown job", job_id="job_1")
        assert not await mark_delivery(session, "msg_missing", accepted=False)
        await session.commit()
    async with db.session() as session:
        rows = await list_deliveries(session, job_id="job_1")
        assert [r.webhook_id for r in rows] == ["msg_b", "msg_a"]
        assert (rows[1].accepted, rows[1].reason) == (False, "unknown job")
        assert len(await list_deliveries(session, limit=1)) == 1
        assert await get_delivery(session, "msg_missing") is None


async def test_concurrent_redeliveries_exactly_one_is_new(db: Database) -> None:
    start = asyncio.Event()

    async def receive() -> bool:
        async with db.session() as session:
            await session.connection()
            await start.wait()
            new = await record_delivery(session, "msg_race", status="succeeded")
            await session.commit()
            return new

    tasks = [asyncio.create_task(receive()) for _ in range(5)]
    await asyncio.sleep(0)
    start.set()
    assert sorted(await asyncio.gather(*tasks)) == [False] * 4 + [True]
    async with db.session() as session:
        assert len(await list_deliveries(session)) == 1
