"""`apply_prediction` applies a prediction only to the job that owns it: a body naming a prediction
another job holds (a lookup's stale candidate, a mixed-up delivery) changes nothing of this job; a
snapshot of the run applied after its end changes no output; a success clears the cost limit's
cancel mark."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database


async def _job(session: AsyncSession, prediction_id: str | None) -> str:
    job, _ = await repo.create_job(
        session,
        config_name="example",
        hardware="l40s",
        model="simpletuner/advanced-trainer",
    )
    if prediction_id is not None:
        assert await repo.record_prediction_id(session, job.id, prediction_id)
    return job.id


@pytest.mark.parametrize("own", [None, "p_mine"])
async def test_another_jobs_prediction_changes_nothing(db: Database, own: str | None) -> None:
    async with db.session() as session:
        owner = await _job(session, "p_theirs")
        mine = await _job(session, own)
        await session.commit()
    theirs = {"id": "p_theirs", "status": "processing", "logs": "Step 1 of 10: loss 0.5\n"}
    async with db.session() as session:
        applied = await apply_prediction(session, mine, theirs, packaged_catalogue(), source="poll")
        await session.commit()
    assert (applied.status_changed, applied.new_logs) == (False, "")
    async with db.session() as session:
        job = await repo.read_job(session, mine)
        assert (job.prediction_id, job.status, job.logs_offset) == (own, "created", 0)
        assert (await repo.read_job(session, owner)).prediction_id == "p_theirs"


async def test_a_late_snapshot_of_the_run_never_rewinds_a_finished_jobs_output(db: Database) -> None:
    """A poll read before the end (or a replayed `output` webhook) applied after the completed one:
    the output went back from the final list to the first file, with a false `output` event."""
    final = ["a.safetensors", "b.safetensors", "final.safetensors"]
    async with db.session() as session:
        job_id = await _job(session, "p_1")
        await session.commit()
    for prediction in (
        {"id": "p_1", "status": "processing", "output": final[:1]},
        {"id": "p_1", "status": "succeeded", "output": final, "metrics": {"predict_time": 60}},
        {"id": "p_1", "status": "processing", "output": final[:1]},  # read before the end, applied after
    ):
        async with db.session() as session:
            await apply_prediction(session, job_id, prediction, packaged_catalogue(), source="poll")
            await session.commit()
    async with db.session() as session:
        job = await repo.read_job(session, job_id)
        outputs = [e.data for e in await repo.list_events(session, job_id) if e.kind == "output"]
    assert (job.status, job.output) == ("succeeded", final)
    assert outputs == [{"output": final[:1]}]


async def test_a_run_that_succeeded_before_the_cost_limit_stopped_it_keeps_no_cost_limit_error(
    db: Database,
) -> None:
    """The limit's canceller marks a running job, then its cancel reaches Replicate after the run
    finished: the job succeeded, and said "Canceled at the cost limit" beside it."""
    async with db.session() as session:
        job_id = await _job(session, "p_1")
        await repo.apply_status(session, job_id, "running")
        await repo.set_fields(
            session,
            job_id,
            error_code="cost_limit_reached",
            error="Canceled at the cost limit",
            error_hint="h",
        )
        await session.commit()
    succeeded = {"id": "p_1", "status": "succeeded", "output": "x", "metrics": {"predict_time": 60}}
    async with db.session() as session:
        await apply_prediction(session, job_id, succeeded, packaged_catalogue(), source="cancel")
        await session.commit()
        job = await repo.read_job(session, job_id)
    assert (job.status, job.error_code, job.error, job.error_hint) == ("succeeded", None, None, None)
