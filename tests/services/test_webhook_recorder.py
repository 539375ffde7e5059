"""What the flight recorder keeps: headers without credentials, bodies without Secret inputs, a
bounded number of arrivals anyone can send, and 7 days of the rest."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from simpletuner_cloud.services import webhook_recorder as recorder
from simpletuner_cloud.services.webhook_recorder import (
    ArrivalBudget,
    DeliveryPruner,
    kept_headers,
    stored_body,
)
from simpletuner_cloud.store import webhook_deliveries as deliveries
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import utcnow


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()


def test_kept_headers_drop_credentials_and_cut_long_values() -> None:
    kept = kept_headers(
        [
            ("Authorization", "Bearer r8_" + "a" * 37),
            ("Cookie", "simpletuner_session=x"),
            ("X-Forwarded-For", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("X-Long", "y" * 600),
            ("X-Leak", "r8_" + "b" * 37),
        ]
    )
    assert kept == {
        "x-forwarded-for": "1.1.1.1, 2.2.2.2",
        "x-long": "y" * 512 + "... (600 characters)",
        "x-leak": "[REDACTED]",
    }


def test_stored_body_keeps_the_exact_bytes_unless_a_secret_input_must_go() -> None:
    plain = b'{"id": "p", "input": {"config_json": "{}"}, "logs": "x"}'
    assert zlib.decompress(stored_body(plain, json.loads(plain))) == plain
    secret = {"id": "p", "input": {"s3_secret_key": "k" * 40, "hf_token": "", "steps": 3}}
    kept = json.loads(zlib.decompress(stored_body(json.dumps(secret).encode(), secret)))
    assert kept["input"] == {"s3_secret_key": "[REDACTED]", "hf_token": "", "steps": 3}


def test_the_budget_records_a_burst_then_a_steady_rate() -> None:
    now = [100.0]
    budget = ArrivalBudget(rate=2, burst=3, clock=lambda: now[0])
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    now[0] += 1.0  # two more tokens a second later
    assert [budget.take() for _ in range(3)] == [True, True, False]
    assert budget.skipped == 3


async def test_prune_drops_old_rows_superseded_bodies_and_extra_rejections(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder, "MAX_UNCLAIMED_ROWS", 2)
    now = utcnow()
    body = zlib.compress(b"{}")
    async with database.session() as session:
        await deliveries.claim_delivery(session, "old", received_at=now - timedelta(days=8), job_id="j")
        start = await deliveries.claim_delivery(session, "m1", job_id="j", event="start", body=body)
        logs = await deliveries.claim_delivery(session, "m2", job_id="j", event="logs", body=body)
        done = await deliveries.claim_delivery(session, "m3", job_id="j", event="completed", body=body)
        other = await deliveries.claim_delivery(session, "m4", job_id="k", event="logs", body=body)
        for _ in range(4):
            await deliveries.record_arrival(session, outcome="rejected", error_code="signature_missing")
        await session.commit()
    assert await DeliveryPruner(database).prune() == {
        "expired": 1,
        "bodies_dropped": 2,
        "unclaimed_trimmed": 2,
    }
    async with database.session() as session:
        rows = {row.id: row for row in await deliveries.list_deliveries(session)}
    assert [rows[i].body is not None for i in (start, logs, done, other)] == [False, False, True, True]
    assert sum(1 for row in rows.values() if row.webhook_id is None) == 2


async def test_the_worker_task_prunes_at_most_every_interval(database: Database) -> None:
    pruner = DeliveryPruner(database, every=3600)
    async with database.session() as session:
        await deliveries.claim_delivery(session, "a", received_at=utcnow() - timedelta(days=9))
        await session.commit()
    await pruner.run()
    async with database.session() as session:
        await deliveries.claim_delivery(session, "b", received_at=utcnow() - timedelta(days=9))
        await session.commit()
    await pruner.run()  # too soon: nothing pruned
    async with database.session() as session:
        assert [row.webhook_id for row in await deliveries.list_deliveries(session)] == ["b"]
