"""Deliveries that only grow a job's log are written together (`services/webhook_bulk.py`); every
other goes one by one through `apply_prediction`. The two must leave the same store: the same script
of deliveries (start, running, log growth with steps, losses and stages, a repeat of the same log, a
redelivered id, a prediction nobody follows, the end with its output and cost) is played for one set
of jobs one delivery at a time with bulk writes off, and for another set in concurrent waves, and the
jobs, logs, readings, timelines and flight-recorder rows are compared, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.services.webhook_receiver import Arrival, Receipt, WebhookReceiver
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store import webhook_deliveries as deliveries
from simpletuner_cloud.store.tables import utcnow
from tests.support.postgres import fresh_database
from tests.support.provider_sandbox import RunningSandbox
from tests.support.webhooks import prediction, signed, signing_sandbox, tracked_job

REPLICATE_PEER = "34.82.1.2"
JOBS = 6
TOTAL = 12


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with signing_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
async def app(
    sandbox: RunningSandbox, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    monkeypatch.setenv("REPLICATE_API_TOKEN", sandbox.token)
    monkeypatch.setenv("SIMPLETUNER_REPLICATE_BASE_URL", sandbox.url)
    monkeypatch.setenv("SIMPLETUNER_STATUS_PAGE_URL", sandbox.status_url)
    if database_url:
        monkeypatch.setenv("SIMPLETUNER_DATABASE_URL", database_url)
    application = create_app(load_settings())
    async with application.router.lifespan_context(application):
        yield application


def log_until(step: int) -> str:
    """The trainer's log up to `step` (cumulative, as Replicate sends it), a stage after step 5."""
    lines = ["***** Running training *****", f"  Total optimization steps = {TOTAL}"]
    for n in range(1, step + 1):
        pct = n * 100 // TOTAL
        lines.append(
            f"Epoch 1/1, Steps: {pct:3d}%|##| {n}/{TOTAL} [00:0{n % 10}<00:10,  2.00it/s, "
            f"step_loss={1.0 / n:.4f}, lr=0.0001]"
        )
        if n == 5:
            lines.append("[STAGE] 🖼️ Validation (1/2): rendering samples")
    return "\n".join(lines) + "\n"


def script(prediction_id: str, last: bool) -> list[list[dict[str, Any]]]:
    """Waves of bodies for one job (a wave holds what arrives together)."""
    running = {"started_at": "2026-12-01T10:00:05.000Z"}
    waves = [
        [prediction(prediction_id, "starting")],
        [prediction(prediction_id, "processing", logs=log_until(1), **running)],
        [prediction(prediction_id, "processing", logs=log_until(3), **running)],
        [prediction(prediction_id, "processing", logs=log_until(3), **running)],  # nothing new
        [prediction(prediction_id, "processing", logs=log_until(5), **running)],
        # Two of the same job in one wave: the second follows the first.
        [
            prediction(prediction_id, "processing", logs=log_until(7), **running),
            prediction(prediction_id, "processing", logs=log_until(8), **running),
        ],
        [prediction(prediction_id, "processing", logs=log_until(6), **running)],  # late, shorter
    ]
    if last:
        waves.append(
            [
                prediction(
                    prediction_id,
                    "succeeded",
                    logs=log_until(TOTAL),
                    output={"weights": "https://replicate.delivery/x/lora.safetensors"},
                    completed_at="2026-12-01T10:05:00.000Z",
                    metrics={"predict_time": 300.5},
                    **running,
                )
            ]
        )
    return waves


def arrival(body: dict[str, Any], msg_id: str) -> Arrival:
    raw, headers = signed(body, msg_id=msg_id)
    return Arrival(body=raw, headers=list(headers.items()), peer=REPLICATE_PEER, job_ref=None)


async def play(receiver: WebhookReceiver, group: str, *, together: bool) -> dict[str, str]:
    """Play the script for `JOBS` jobs named `group`; returns job id by position."""
    jobs = {}
    for n in range(JOBS):
        jobs[f"{n}"] = await tracked_job(receiver.database, f"p{group}{n}")
    plans = [script(f"p{group}{n}", last=n % 2 == 0) for n in range(JOBS)]
    for wave in range(max(len(plan) for plan in plans)):
        sends: list[Arrival] = []
        for n, plan in enumerate(plans):
            for k, body in enumerate(plan[wave] if wave < len(plan) else []):
                sends.append(arrival(body, f"msg_{group}_{n}_{wave}_{k}"))
        if wave == 4:  # a redelivery of wave 2's id, and a prediction no job follows
            sends.append(arrival(plans[1][2][0], f"msg_{group}_1_2_0"))
            sends.append(
                arrival(prediction(f"p{group}nobody", "processing", logs="x\n"), f"msg_{group}_nobody")
            )
        if together:
            receipts = await asyncio.gather(*(receiver.receive(a) for a in sends))
        else:
            receipts = [await receiver.receive(a) for a in sends]
        assert all(isinstance(r, Receipt) and r.status == 200 for r in receipts)
    return jobs


JOB_COLUMNS = (
    "status",
    "provider_status",
    "logs_offset",
    "progress",
    "output",
    "error",
    "actual_cost_usd",
    "started_at",
    "completed_at",
    "submitted_at",
)


async def state(app: FastAPI, jobs: dict[str, str], group: str) -> dict[str, Any]:
    """Everything the deliveries wrote, with the names that differ between groups taken out."""
    seen: dict[str, Any] = {}
    async with app.state.database.session() as session:
        for position, job_id in jobs.items():
            job = await repo.require_job(session, job_id)
            progress = dict(job.progress or {})
            events = await repo.list_events(session, job_id)
            seen[position] = {
                "job": {name: getattr(job, name) for name in JOB_COLUMNS} | {"progress": progress},
                "heard": job.last_webhook_at is not None,
                "logs": await repo.read_logs(session, job_id),
                "metrics": [
                    (m.step, m.loss, m.learning_rate) for m in await repo.list_metrics(session, job_id)
                ],
                "events": [
                    (e.kind, e.from_status, e.to_status, e.message, e.data)
                    for e in events
                    if e.kind != "cleaned_up"  # the worker's, after the end, whenever it gets there
                ],
            }
        rows = await deliveries.list_deliveries(session, limit=1000)
    seen["deliveries"] = sorted(
        (
            (row.presented_id or "").replace(f"msg_{group}_", ""),
            row.outcome,
            (row.reason or "").replace(f"p{group}", "p"),
            row.event,
            row.status,
            row.accepted,
            row.body is not None,
            next((p for p, j in jobs.items() if j == row.job_id), None),
        )
        for row in rows
        if (row.presented_id or "").startswith(f"msg_{group}_")
    )
    return seen


async def test_bulk_writes_leave_the_store_as_one_by_one_writes_do(app: FastAPI) -> None:
    receiver: WebhookReceiver = app.state.webhook_receiver
    writes = receiver.writes
    together = writes.together
    writes.together = None
    alone = await play(receiver, "a", together=False)
    assert writes.written_together == 0
    writes.together = together
    batches_before = writes.batches
    bulk = await play(receiver, "b", together=True)

    assert writes.written_together >= JOBS  # the waves of log growth went together
    assert writes.batches - batches_before < 40  # far fewer transactions than the 50 deliveries
    expected, got = await state(app, alone, "a"), await state(app, bulk, "b")
    for key in expected:
        assert got[key] == expected[key], key
    # And the script did what it says, so the comparison compares something.
    first = expected["0"]
    assert first["job"]["status"] == "succeeded" and first["logs"] == log_until(TOTAL)
    assert [step for step, _, _ in first["metrics"]] == list(range(1, TOTAL + 1))
    assert expected["1"]["job"]["status"] == "running" and expected["1"]["logs"] == log_until(8)
    assert expected["1"]["job"]["progress"]["step"] == 8
    kinds = [kind for kind, *_ in expected["1"]["events"]]
    assert kinds.count("logs") == 5 and "progress" in kinds
    outcomes = {(name, outcome, reason or None) for name, outcome, reason, *_ in expected["deliveries"]}
    assert ("1_2_0", "duplicate", "already received") in outcomes
    assert ("1_3_0", "accepted", "nothing newer than what the job already had") in outcomes
    assert any(name == "nobody" and outcome == "ignored" for name, outcome, *_ in outcomes)


async def test_a_log_moved_by_another_writer_sends_the_batch_one_by_one(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compare-and-set of the bulk write misses (which the write lock makes a should-not-happen):
    nothing of the bulk part is kept and every delivery is applied alone, once."""
    receiver: WebhookReceiver = app.state.webhook_receiver
    jobs = [await tracked_job(receiver.database, f"pmoved{n}", status="running") for n in range(3)]
    async with receiver.database.session() as session:
        for job_id in jobs:
            await repo.set_fields(session, job_id, provider_status="processing", submitted_at=utcnow())
            await repo.append_logs(session, job_id, log_until(1))
        await session.commit()

    real_advance = repo.advance_logs_together
    calls = {"n": 0}

    async def moved_first(session: Any, moves: list[Any]) -> bool:
        calls["n"] += 1
        await real_advance(session, moves)
        return False  # as if another writer had moved a log

    monkeypatch.setattr(repo, "advance_logs_together", moved_first)
    before = receiver.writes.written_together
    sends = [
        arrival(prediction(f"pmoved{n}", "processing", logs=log_until(4)), f"msg_moved_{n}") for n in range(3)
    ]
    receipts = await asyncio.gather(*(receiver.receive(a) for a in sends))
    assert [r.outcome for r in receipts] == ["accepted"] * 3
    assert receiver.writes.written_together == before  # rolled back, then written one by one
    assert calls["n"] >= 1  # the bulk write was tried (once per batch), missed, and was rolled back
    async with receiver.database.session() as session:
        for job_id in jobs:
            assert await repo.read_logs(session, job_id) == log_until(4)
            assert [m.step for m in await repo.list_metrics(session, job_id)] == [1, 2, 3, 4]
        rows = [
            r
            for r in await deliveries.list_deliveries(session)
            if (r.presented_id or "").startswith("msg_moved")
        ]
    assert sorted(r.outcome for r in rows) == ["accepted"] * 3  # each claimed once, no duplicate rows
