"""`apply_prediction` applies a prediction only to the job that owns it: a body naming a prediction
another job holds (a lookup's stale candidate, a mixed-up delivery) changes nothing of this job."""

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
