"""A create of unknown fate whose lookup finds nothing while the create's own webhook records the
prediction (its URL names the job): the job follows its prediction. It is never failed as "not
confirmed" (and then canceled at Replicate by its clean-up), and no false "sending again" is said."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import utcnow


class WebhookDuringTheLookup:
    """Replicate at the unit seam: its prediction list is read while the create's `start` webhook
    lands (applied and committed from another session, as the receiver would); it lists nothing
    yet. Anything else it is asked is recorded."""

    def __init__(self, db: Database, job_id: str) -> None:
        self.db, self.job_id, self.asked = db, job_id, []

    async def list_predictions(self, **_: Any) -> dict[str, Any]:
        async with self.db.session() as session:
            started = {"id": "p_real", "status": "processing", "logs": "Booting\n"}
            await apply_prediction(session, self.job_id, started, packaged_catalogue(), source="webhook")
            await session.commit()
        return {"results": [], "next": None}

    def __getattr__(self, name: str) -> Any:
        async def asked(*_: Any, **__: Any) -> Any:
            self.asked.append(name)
            raise AssertionError(f"Replicate was asked {name}")

        return asked


class Runtime:
    def __init__(self, client: Any) -> None:
        self.fake, self.environ = client, {}

    @contextlib.asynccontextmanager
    async def client(self, *_: Any, **__: Any) -> AsyncIterator[Any]:
        yield self.fake


@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_prediction_recorded_during_the_last_lookup_is_followed(db: Database, attempts: int) -> None:
    settings = load_settings(create_lookup_seconds=30)
    async with db.session() as session:
        job, _ = await repo.create_job(
            session, config_name="c", hardware="l40s", model="m", version="v1", spec={"inputs": {"x": 1}}
        )
        sent = utcnow() - timedelta(seconds=31)  # the lookup window has passed
        await repo.apply_status(session, job.id, "submitting", create_attempts=attempts, create_sent_at=sent)
        await session.commit()
    replicate = WebhookDuringTheLookup(db, job.id)
    runner = JobRunner(settings, db, Runtime(replicate), EventBus())
    async with db.session() as session:
        assert await repo.claim_job(session, job.id, runner.holder, 30)
        await session.commit()
        claimed = await repo.read_job(session, job.id)
    await runner._create(claimed)
    async with db.session() as session:
        row = await repo.read_job(session, job.id)
        kinds = [event.kind for event in await repo.list_events(session, job.id)]
    assert (row.status, row.prediction_id, row.error_code) == ("running", "p_real", None)
    assert row.create_sent_at == sent  # still the create that made it
    assert "create_retry" not in kinds and replicate.asked == []
