"""Cancel and delete. Cancel is idempotent: a job still packaging or uploading stops here and nothing
is created at Replicate; one with a prediction is canceled there too; a create whose fate is unknown
is marked, and the worker cancels the prediction once it finds it. Delete removes a finished job and
says what it did not delete; what the job cost stays in the spend (`deleted_job_costs`, in the same
transaction), so deleting history never gives budget back to the cost limit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import JobStatus, is_terminal
from simpletuner_cloud.errors import CloudError, NotFound
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.services.job_views import CancelResult, DeleteResult, job_view, money
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import DeletedJobCostRow, JobRow

log = logging.getLogger(__name__)
LOCAL_ONLY = frozenset({JobStatus.CREATED, JobStatus.PACKAGING, JobStatus.UPLOADING})


async def cancel_job(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime, job_id: str
) -> CancelResult:
    catalogue = load_hardware_catalogue(settings)
    job = await repo.require_job(session, job_id)
    now = datetime.now(UTC)
    if is_terminal(job.status):
        return _answer(job, catalogue, False, f"The job already {job.status}; nothing to cancel.")
    await repo.set_fields(session, job_id, cancel_requested_at=job.cancel_requested_at or now)
    # Decide on the row as it is now, not as first read: this write holds it (PostgreSQL's row lock,
    # SQLite's write lock), so a create marked sent before it is seen, and none is marked after.
    job = await repo.read_job(session, job_id)
    if is_terminal(job.status):  # it ended between the two reads: the request is not kept
        ended = _answer(job, catalogue, False, f"The job already {job.status}; nothing to cancel.")
        await session.rollback()  # (after the answer is made: a rollback expires the row)
        return ended
    await repo.add_event(session, job_id, "cancel_requested", message="Cancel requested.")
    if JobStatus(job.status) in LOCAL_ONLY or (
        JobStatus(job.status) is JobStatus.SUBMITTING and job.create_sent_at is None
    ):
        # Nothing exists at Replicate yet; the worker sees the cancel before it creates anything
        # (it re-reads the job right before sending the create, and the create is sent only while
        # `cancel_requested_at` is unset).
        await repo.apply_status(
            session, job_id, JobStatus.CANCELED, message="Canceled before anything ran at Replicate."
        )
        await announce(session, job_id)
        await session.commit()
        return _answer(
            await repo.require_job(session, job_id),
            catalogue,
            False,
            "Canceled; no prediction was created at Replicate (a dataset file uploaded for it is deleted).",
        )
    await announce(session, job_id)
    await session.commit()
    if job.prediction_id is None:
        return _answer(
            job,
            catalogue,
            False,
            "Cancel recorded; the prediction is being looked up and will be "
            "canceled at Replicate as soon as it is found.",
        )
    replicate = await load_replicate_settings(session, settings)
    try:
        async with runtime.client(settings, replicate) as client:
            prediction = await client.cancel_prediction(job.prediction_id)
    except CloudError as exc:
        log.warning("job %s: cancel at Replicate failed (%s); the worker retries", job_id, exc.code)
        return _answer(
            job,
            catalogue,
            False,
            f"Cancel recorded; Replicate did not answer ({exc.message}). The worker keeps trying.",
        )
    await apply_prediction(session, job_id, prediction, catalogue, source="cancel")
    await repo.add_event(session, job_id, "canceled_at_replicate", data={"prediction_id": job.prediction_id})
    await announce(session, job_id)
    await session.commit()
    return _answer(await repo.require_job(session, job_id), catalogue, True, "Canceled at Replicate.")


def _answer(job: JobRow, catalogue: object, at_replicate: bool, message: str) -> CancelResult:
    return CancelResult(
        job=job_view(job, catalogue, datetime.now(UTC)),  # type: ignore[arg-type]
        canceled_at_replicate=at_replicate,
        message=message,
    )


def _still_cleaning(job_id: str) -> CloudError:
    return CloudError(
        f"Job {job_id} is still being cleaned up (its dataset file at Replicate, its secrets).",
        code="job_active",
        hint="Try again in a few seconds.",
    )


async def delete_job(session: AsyncSession, job_id: str) -> DeleteResult:
    job = await repo.require_job(session, job_id)
    if not is_terminal(job.status):
        raise CloudError(
            f"Job {job_id} is {job.status}; only a finished job can be deleted.",
            code="job_active",
            hint=f"Cancel it first: `simpletuner cloud jobs cancel {job_id}`.",
        )
    if job.cleaned_at is None:
        raise _still_cleaning(job_id)
    not_deleted = []
    if job.prediction_id:
        not_deleted.append(
            f"The prediction {job.prediction_id} at Replicate (its record stays in your Replicate account; "
            "its data is removed by Replicate after an hour)."
        )
    if job.output:
        not_deleted.append(f"The trained model where the trainer published it: {job.output}")
    # The cost as the delete finds it (RETURNING): a late webhook may still correct it until then.
    # Only while it is still cleaned up: an upload linked since the read (a late one) made its
    # clean-up due again, and a row deleted now would leave that file at Replicate.
    gone = (
        await session.execute(
            delete(JobRow)
            .where(JobRow.id == job_id, JobRow.cleaned_at.is_not(None))
            .returning(JobRow.completed_at, JobRow.hardware, JobRow.config_name, JobRow.actual_cost_usd)
        )
    ).one_or_none()
    if gone is None:
        await session.rollback()
        if await repo.get_job(session, job_id) is None:  # deleted meanwhile, by another request or server
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        raise _still_cleaning(job_id)
    completed_at, hardware, config_name, cost = gone
    if cost and completed_at is not None:
        await session.execute(
            insert(DeletedJobCostRow).values(
                job_id=job_id,
                completed_at=completed_at,
                hardware=hardware,
                config_name=config_name,
                cost_usd=cost,
                deleted_at=datetime.now(UTC),
            )
        )
        not_deleted.append(
            f"Its cost, ${money(cost)}: it still counts in the spend and against the cost limit "
            "of the period it finished in."
        )
    await session.commit()
    return DeleteResult(deleted=job_id, not_deleted=not_deleted)
