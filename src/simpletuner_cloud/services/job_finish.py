"""After a job's end: nothing left running at Replicate (a local cancel, a cancel during an unknown
create), the final logs and cost kept, the dataset file deleted once no job may still read it, the
job's secrets gone. Until all of that is done the job is claimed again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select

from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, map_replicate_status
from simpletuner_cloud.services.job_create import CreateSteps
from simpletuner_cloud.services.job_secrets import delete_job_secrets
from simpletuner_cloud.services.job_steps import ACTIVE, PREPARE_STATUSES
from simpletuner_cloud.services.job_tracking import apply_prediction, final_cost
from simpletuner_cloud.services.job_views import rate_of
from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.services.uploads import delete_dataset_upload
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow
from simpletuner_cloud.store.uploads import get_upload


class FinishSteps(CreateSteps):
    async def _finish(self, job_id: str) -> None:
        """After a terminal state: nothing left running at Replicate, final logs and cost kept, the
        dataset file deleted, the job's secrets gone. Until all of that is done the job is retried."""
        job = await self._load(job_id)
        if job.cleaned_at is not None:
            # Claimed before the clean-up that ended it was committed (a holder's own lease counts as
            # free to it): done already, nothing to delete or say again.
            return
        if job.prediction_id is None and job.create_sent_at is not None:
            # Canceled while a create's fate was unknown: find it (and stop it) before forgetting it.
            if job.create_sent_at > utcnow() - timedelta(seconds=self.settings.create_lookup_seconds * 2):
                if not await self._recover_prediction(job):
                    await self._later(job_id, self.settings.create_lookup_seconds / 3)
                    return
                job = await self._load(job_id)
        if job.prediction_id is not None:
            replicate = await self._replicate_settings()
            async with self.runtime.client(self.settings, replicate) as client:
                prediction = await client.find_prediction(job.prediction_id) or {}
                remote = map_replicate_status(prediction.get("status")) if prediction else None
                if prediction and remote is not None and remote not in TERMINAL_STATUSES:
                    prediction = await client.cancel_prediction(job.prediction_id)
                    async with self.database.session() as session:
                        await repo.add_event(
                            session,
                            job_id,
                            "canceled_at_replicate",
                            data={"prediction_id": job.prediction_id},
                        )
                        await session.commit()
                    remote = map_replicate_status(prediction.get("status"))
                if prediction and remote is not None and remote not in TERMINAL_STATUSES:
                    await self._later(job_id, self.settings.poll_seconds)  # still stopping: come back
                    return
            if prediction:
                async with self.database.session() as session:
                    await apply_prediction(session, job_id, prediction, self.catalogue, source="poll")
                    current = await repo.require_job(session, job_id)
                    # A local cancel finished the job before Replicate billed it: record what it billed.
                    if current.actual_cost_usd is None or (prediction.get("metrics") or {}).get(
                        "predict_time"
                    ):
                        cost = final_cost(prediction, rate_of(self.catalogue, current.hardware))
                        await repo.set_fields(session, job_id, actual_cost_usd=cost)
                    await session.commit()
        job = await self._load(job_id)  # an upload that finished after the end is linked by now
        dataset = await self._delete_dataset(job)
        if dataset is None:
            await self._later(job_id, self.settings.poll_seconds)
            return
        delete_job_secrets(self.settings, job_id)
        async with self.database.session() as session:
            # Only for the upload this pass dealt with: one linked meanwhile (a late upload) made
            # the clean-up due again, and marking it done would leave that file at Replicate.
            cleaned = await repo.set_fields(
                session,
                job_id,
                fence=self.holder,
                expect={"upload_id": job.upload_id},
                cleaned_at=utcnow(),
                next_poll_at=None,
            )
            if not cleaned:
                await session.rollback()
                return  # the next pass (the link made it due) deletes the new file
            await repo.add_event(session, job_id, "cleaned_up", message=f"{dataset}; secrets removed.")
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()

    async def _delete_dataset(self, job: JobRow) -> str | None:
        """Delete the job's dataset file at Replicate, unless another job may still read it: one that
        holds the same upload, or one not yet past `submitting` (it may be about to reuse it: the
        reuse check and this delete would race). None: come back later; else what happened, as the
        timeline says it."""
        if job.upload_id is None:
            return "No dataset file was uploaded"
        async with self.database.session() as session:
            upload = await get_upload(session, job.upload_id)
        if upload is None or upload.deleted_at is not None:
            return "Dataset file already deleted at Replicate"
        # The check and the delete under the archive's upload lock, which a job reusing the file
        # holds while it checks and links it: that job is seen here, or finds the file deleted. A
        # lock held now (an upload of the same archive running) means: come back later.
        lock = upload_lock(self.database, upload.sha256, self.holder, self.lease_seconds, wait=False)
        async with lock as held:
            return await self._delete_unneeded_dataset(job, job.upload_id) if held else None

    async def _delete_unneeded_dataset(self, job: JobRow, upload_id: str) -> str | None:
        async with self.database.session() as session:
            still_needed = await session.scalar(
                select(JobRow.id)
                .where(
                    JobRow.id != job.id,
                    or_(
                        and_(JobRow.upload_id == upload_id, JobRow.status.in_(ACTIVE)),
                        JobRow.status.in_([s.value for s in PREPARE_STATUSES]),
                    ),
                )
                .limit(1)
            )
        if still_needed is not None:
            return None
        replicate = await self._replicate_settings()
        async with self.runtime.client(self.settings, replicate) as client:
            if await delete_dataset_upload(self.database, client.http, upload_id):
                return "Dataset file deleted at Replicate"
        return "Dataset file already deleted at Replicate"
