"""What this tool knows about money: Replicate has no public balance API, so the answer says so
(`balance: null`) and shows only facts it owns: spend of its own jobs per day/week/month, the cost
limit's status and the hardware price table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import (
    PERIOD_NOUNS,
    PERIODS,
    SpendEntry,
    accrued_cost,
    limit_status,
    period_start,
    spend_by_period,
)
from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.services.hardware_catalogue import hardware_answer, load_hardware_catalogue, usd
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.tables import JobRow

BALANCE_REASON = "Replicate has no public API for account balance"
ACCOUNT_URL = "https://replicate.com/account/billing"
# Replicate bills a canceled run up to the cancel; failed and aborted public-model runs are free.
BILLED_WHEN_UNPRICED = frozenset({JobStatus.SUCCEEDED.value, JobStatus.CANCELED.value})


def job_spend(job: JobRow, catalogue: HardwareCatalogue, now: datetime) -> SpendEntry | None:
    """The cost of one job and the instant it counts at. The recorded actual cost wins; a running
    job accrues from `started_at`; a finished one without a recorded cost is priced by its run time."""
    price = catalogue.price_per_second(job.hardware)
    at = job.completed_at or now
    if job.actual_cost_usd is not None:
        return SpendEntry(at, job.actual_cost_usd)
    if job.started_at is None:
        return None
    if job.status == JobStatus.RUNNING.value:
        return SpendEntry(now, accrued_cost(job.started_at, now, price))
    if job.status in BILLED_WHEN_UNPRICED and job.completed_at is not None:
        return SpendEntry(at, accrued_cost(job.started_at, job.completed_at, price))
    return None


async def spend_entries(
    session: AsyncSession, catalogue: HardwareCatalogue, now: datetime
) -> Iterable[SpendEntry]:
    earliest = min(period_start(period, now) for period in PERIODS)
    query = select(JobRow).where(or_(JobRow.completed_at.is_(None), JobRow.completed_at >= earliest))
    jobs = (await session.scalars(query)).all()
    return [entry for job in jobs if (entry := job_spend(job, catalogue, now)) is not None]


async def billing_summary(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    catalogue = load_hardware_catalogue(settings)
    replicate = await load_replicate_settings(session, settings)
    totals = spend_by_period(await spend_entries(session, catalogue, now), now)
    limit = replicate.cost_limit.domain()
    status = limit_status(totals[limit.period], limit, now)
    return {
        "provider": "replicate",
        "balance": None,
        "balance_reason": BALANCE_REASON,
        "account_url": ACCOUNT_URL,
        "currency": catalogue.currency,
        "as_of": now.isoformat(),
        "spend": {PERIOD_NOUNS[period]: usd(total) for period, total in totals.items()},
        "spend_note": "Jobs started by this tool only; running jobs count their cost so far.",
        "cost_limit": {
            **replicate.cost_limit.answer(),
            "state": status.state,
            "spent": usd(status.spent),
            "remaining": usd(status.remaining) if status.remaining is not None else None,
            "period_start": status.period_start.isoformat(),
            "resets_at": status.resets_at.isoformat(),
        },
        "hardware": hardware_answer(catalogue)["hardware"],
        "sandbox": settings.sandbox,
    }
