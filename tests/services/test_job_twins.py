"""Jobs whose create inputs are identical (the same example, the same reused upload, no webhook URL
naming the job) never take each other's predictions: one create of those inputs is outstanding at a
time, a lookup adopts only a prediction no other job recorded, and a prediction another job recorded
first is "not ours" (no traceback, no false timeline entry, no second create)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.tables import JobRow, utcnow
from tests.support.job_server import EXAMPLE, SUBMIT, another_worker, job_server, sandbox
from tests.support.waiting import eventually_sync

JOBS = 4


async def submitting_like(session: AsyncSession, model: JobRow, **spec: Any) -> str:
    """A job at `submitting` with the same inputs, version and upload as `model` (its spec with
    `spec` over it), as a second submit of the same example would be."""
    job, _ = await repo.create_job(
        session,
        config_name=model.config_name,
        hardware=model.hardware,
        model=model.model,
        version=model.version,
        spec={**model.spec, **spec},
        upload_id=model.upload_id,
    )
    await repo.apply_status(session, job.id, "packaging")
    await repo.apply_status(session, job.id, "submitting", next_poll_at=None)
    return job.id


def test_twins_with_a_create_of_unknown_fate_each_keep_their_own_prediction() -> None:
    with job_server(steps=5, create_lookup_seconds=1.0) as (http, _):
        sandbox(
            http,
            "POST",
            "/faults",
            json={
                "server_errors": {"count": 1, "status": 503, "route": "/v1/predictions", "method": "POST"},
                "slow_bodies": {
                    "response_delay": 1.0,
                    "chunk_bytes": 512,
                    "route": "/v1/predictions",
                    "method": "POST",
                },
            },
        )
        ids = []
        for _ in range(JOBS):
            answer = http.post(SUBMIT, json={**EXAMPLE, "webhook_url": None})
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["job_id"])
            time.sleep(0.4)

        def all_cleaned() -> list[dict[str, Any]] | None:
            jobs = [http.get(f"/api/cloud/jobs/{job_id}").json() for job_id in ids]
            done = all(any(e["kind"] == "cleaned_up" for e in job["timeline"]) for job in jobs)
            return jobs if done else None

        jobs = eventually_sync(all_cleaned, timeout=120, interval=0.2, what="every job cleaned up")
        assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
        listed = sorted(p["id"] for p in sandbox(http, "GET", "/v1/predictions")["results"])
        assert listed == sorted(job["prediction_id"] for job in jobs)  # one each, none extra
        for job in jobs:
            kinds = [e["kind"] for e in job["timeline"]]
            # A create_retry is said only by the job whose create got the 503 (nothing was created).
            assert kinds.count("create_retry") <= ("create_failed" in kinds), (job["id"], kinds)


def test_a_prediction_another_job_recorded_is_not_adopted() -> None:
    with job_server(steps=5) as (http, app):
        first = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]

        def created() -> str | None:
            return http.get(f"/api/cloud/jobs/{first}").json()["prediction_id"]

        taken = eventually_sync(created, timeout=60, what="the first job's prediction")

        async def adopt_it() -> tuple[bool, Any, list[str]]:
            async with another_worker(app) as (runner, database):
                async with database.session() as session:
                    other, _ = await repo.create_job(
                        session, config_name="flux-lora-example", hardware="l40s", model="m"
                    )
                    await session.commit()
                prediction = {"id": taken, "status": "starting", "input": {}}
                adopted = await runner._adopt(other.id, prediction, submitted_at=utcnow(), source="create")
                async with database.session() as session:
                    row = await repo.require_job(session, other.id)
                    kinds = [event.kind for event in await repo.list_events(session, other.id)]
                return adopted, row.prediction_id, kinds

        adopted, prediction_id, kinds = asyncio.run(adopt_it())
        assert (adopted, prediction_id, kinds) == (False, None, ["status"])


def test_a_twin_waits_while_another_create_of_the_same_inputs_is_outstanding() -> None:
    with job_server(steps=5) as (http, app):
        first = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]

        def created() -> str | None:
            return http.get(f"/api/cloud/jobs/{first}").json()["prediction_id"]

        eventually_sync(created, timeout=60, what="the first job's prediction")
        before = len(sandbox(http, "GET", "/v1/predictions")["results"])

        async def create_twin() -> Any:
            async with another_worker(app) as (runner, database):
                async with database.session() as session:
                    model = await repo.require_job(session, first)
                    in_flight = await submitting_like(session, model)
                    waiting = await submitting_like(session, model)
                    await repo.set_fields(session, in_flight, create_sent_at=utcnow(), create_attempts=1)
                    assert await repo.claim_job(session, waiting, runner.holder, 30)
                    await session.commit()
                    job = await repo.require_job(session, waiting)
                await runner._create(job)
                async with database.session() as session:
                    return await repo.require_job(session, waiting)

        job = asyncio.run(create_twin())
        assert (job.status, job.create_sent_at, job.create_attempts) == ("submitting", None, 0)
        assert job.next_poll_at is not None and job.next_poll_at > utcnow()  # it comes back later
        assert len(sandbox(http, "GET", "/v1/predictions")["results"]) == before  # nothing sent


def test_a_create_this_server_cannot_read_the_secrets_of_is_never_sent() -> None:
    """Servers on one database with their own secret stores: the one sending the create lacks the
    job's hf_token. Sent without it, the run would fail (or publish nothing) after booting, paid."""
    with job_server(steps=5) as (http, app):
        first = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
        eventually_sync(
            lambda: http.get(f"/api/cloud/jobs/{first}").json()["prediction_id"],
            timeout=60,
            what="the first job's prediction",
        )
        before = len(sandbox(http, "GET", "/v1/predictions")["results"])

        async def create_without_secrets() -> Any:
            async with another_worker(app) as (runner, database):
                async with database.session() as session:
                    model = await repo.require_job(session, first)
                    # hf_token was saved by the server that took the submit, not by this one
                    job_id = await submitting_like(session, model, secret_inputs=["hf_token"])
                    assert await repo.claim_job(session, job_id, runner.holder, 30)
                    await session.commit()
                    job = await repo.require_job(session, job_id)
                await runner._create(job)
                async with database.session() as session:
                    return await repo.require_job(session, job.id)

        failed = asyncio.run(create_without_secrets())
        assert (failed.status, failed.error_code, failed.prediction_id) == (
            "failed",
            "job_secrets_missing",
            None,
        )
        assert "hf_token" in (failed.error or "") and failed.create_sent_at is None
        assert len(sandbox(http, "GET", "/v1/predictions")["results"]) == before
