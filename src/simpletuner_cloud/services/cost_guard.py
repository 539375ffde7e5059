"""`cancel_running_at_limit`: once the period's spend reaches the cost limit (spent so far, or the
running jobs' projected final cost, as chosen), running and queued jobs are canceled at Replicate
with the reason on the job and its timeline. A periodic worker task, so it holds even when no
webhook arrives; canceling is idempotent, so several servers running it agree."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from simpletuner_cloud.domain.budget import COST_LIMIT_REACHED
from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.costs import current_spend, limit_usd, running_jobs_cancel, usd_beside
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.job_control import cancel_job
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import JobRow

log = logging.getLogger(__name__)
SPENDING = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]


async def enforce_cost_limit(
    settings: Settings,
    database: Database,
    runtime: Callable[[], ProviderRuntime],
    bus: EventBus,
    now: datetime | None = None,
) -> list[str]:
    """Cancel what spends once the limit is reached; returns the ids canceled in this pass."""
    now = now or datetime.now(UTC)
    catalogue = load_hardware_catalogue(settings)
    async with database.session() as session:
        replicate = await load_replicate_settings(session, settings)
        limit = replicate.cost_limit.domain()
        if not (limit.active and limit.cancel_running_at_limit and limit.amount is not None):
            return []
        spend = await current_spend(session, catalogue, replicate, now)
        check = running_jobs_cancel(spend, limit)  # the cost-limit status says what this decides
        if check is None or not check.reached:
            return []
        ids = list((await session.scalars(select(JobRow.id).where(JobRow.status.in_(SPENDING)))).all())
    word = "projected to reach" if limit.cancel_on == "projected" else "reached"
    reason = (
        f"Canceled at the cost limit: this {limit.period} period's spend {word} "
        f"{usd_beside(check.figure, limit)} of the {limit_usd(limit)} limit."
    )
    canceled = []
    for job_id in ids:
        async with database.session() as session:
            # Only while it still spends: a job that finished since the list was read keeps its end.
            still_spending = await repo.set_fields(
                session,
                job_id,
                while_status=SPENDING,
                error_code=COST_LIMIT_REACHED,
                error=reason,
                error_hint="Raise the limit or wait for the period to reset, then submit again "
                "(checkpoints already published are kept).",
            )
            if not still_spending:
                continue
            await repo.add_event(session, job_id, "cost_limit_cancel", message=reason)
            await session.commit()
        try:
            async with database.session() as session:
                await cancel_job(session, settings, runtime(), job_id)
            canceled.append(job_id)
        except CloudError as exc:
            log.warning("cost limit: could not cancel %s (%s); next pass retries", job_id, exc.code)
    if canceled:
        log.warning("cost limit reached: canceled %d job(s)", len(canceled))
        bus.notify()
    return canceled
