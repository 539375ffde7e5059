"""Cost use cases: the estimate before submit (`POST /api/cloud/cost-estimate`, and in every submit
answer), learned from this installation's finished runs; the spend of a period and its series for the
chart (`GET /api/cloud/spend`); and the cost limit's status (`GET /api/cloud/cost-limit/status`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.datasets.preflight import Preflight
from simpletuner_cloud.domain.budget import CostLimit, Period, limit_status
from simpletuner_cloud.domain.estimate import Estimate, PastRun, RunShape, estimate_run, run_shape
from simpletuner_cloud.domain.hardware import HardwareCatalogue, HardwareProfile
from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.domain.progress import TrainingProgress
from simpletuner_cloud.services.job_views import (
    EstimateBasis,
    EstimateView,
    FloatRange,
    Range,
    SecondsRange,
    money,
    rate_of,
)
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.services.spend import (
    GroupBy,
    PeriodSpend,
    period_spend,
    resolve_time_zone,
    spend_groups,
)
from simpletuner_cloud.store.tables import JobRow

HISTORY_JOBS = 200  # newest finished jobs of the same hardware looked at for the learned rate


def estimate_view(estimate: Estimate, profile: HardwareProfile) -> EstimateView:
    shape = estimate.shape
    if estimate.source == "history":
        description = (
            f"Measured on {estimate.past_jobs} finished {shape.model_family} run"
            f"{'s' if estimate.past_jobs != 1 else ''} of this installation at {shape.resolution} px on "
            f"{profile.name}."
        )
    else:
        description = (
            "SimpleTuner's published step times and typical costs (no finished run of this model family, "
            "resolution and hardware here yet)."
        )
    return EstimateView(
        hardware=profile.id,
        usd_per_hour=money(profile.usd_per_hour) or "0",
        steps=shape.steps,
        cost_usd=Range(low=f"{estimate.cost_low:.2f}", high=f"{estimate.cost_high:.2f}"),
        duration_seconds=SecondsRange(low=estimate.seconds_low, high=estimate.seconds_high),
        basis=EstimateBasis(
            source=estimate.source,
            past_jobs=estimate.past_jobs,
            description=description,
            seconds_per_step=FloatRange(low=estimate.seconds_per_step[0], high=estimate.seconds_per_step[1]),
            startup_seconds=FloatRange(low=estimate.startup_seconds[0], high=estimate.startup_seconds[1]),
            model_family=shape.model_family,
            full_fine_tune=shape.full,
            resolution=shape.resolution,
            validations=shape.validations,
            checkpoints=shape.checkpoints,
        ),
    )


def shape_of(preflight: Preflight, options: dict[str, Any]) -> RunShape:
    images = sum(selection.media_count for selection in preflight.selections) or 1
    repeats = 0
    for planned in preflight.plan.datasets:
        try:
            repeats = max(repeats, int(planned.entry.get("repeats") or 0))
        except (TypeError, ValueError):
            continue
    return run_shape(options, images, repeats)


async def estimate_job(
    session: AsyncSession, catalogue: HardwareCatalogue, profile: HardwareProfile, shape: RunShape
) -> Estimate:
    return estimate_run(shape, profile, await past_runs(session, catalogue, profile, shape))


async def past_runs(
    session: AsyncSession, catalogue: HardwareCatalogue, profile: HardwareProfile, shape: RunShape
) -> list[PastRun]:
    """This installation's succeeded runs with the same model family, kind, resolution and hardware,
    and the step rate they measured (the trainer's own tqdm rate, else run time over steps)."""
    rows = (
        await session.scalars(
            select(JobRow)
            .where(JobRow.status == JobStatus.SUCCEEDED.value, JobRow.hardware == profile.id)
            .order_by(JobRow.completed_at.desc())
            .limit(HISTORY_JOBS)
        )
    ).all()
    found = []
    rate = rate_of(catalogue, profile.id)
    for job in rows:
        if (job.spec or {}).get("run_shape") != shape.key():
            continue
        progress = TrainingProgress.from_dict(job.progress)
        steps = progress.total_steps or progress.step
        if not steps:
            continue
        billed = float(job.actual_cost_usd / rate) if job.actual_cost_usd and rate else None
        per_step = progress.seconds_per_step or (billed / steps if billed else None)
        if not per_step:
            continue
        startup = max(0.0, billed - steps * per_step) if billed is not None else None
        found.append(PastRun(per_step, startup))
    return found


# Spend and the limit ---------------------------------------------------------------------------


class SpendGroup(BaseModel):
    key: str
    usd: str


class SpendView(BaseModel):
    period: Period
    start: datetime
    end: datetime
    time_zone: str
    total_usd: str
    committed_usd: str
    running_usd: str
    reserved_usd: str
    group_by: GroupBy
    groups: list[SpendGroup]


class CostLimitStatusView(BaseModel):
    enabled: bool
    amount_usd: str | None
    period: Period
    action: Literal["warn", "block"]
    cancel_running_at_limit: bool
    cancel_on: Literal["accrued", "projected"]
    time_zone: str
    spent_usd: str
    reserved_usd: str
    committed_total_usd: str
    projected_usd: str
    limit_usd: str | None
    percent: float | None
    state: Literal["ok", "warning", "exceeded"]
    period_start: datetime
    resets_at: datetime
    next: str


async def spend_view(
    session: AsyncSession,
    catalogue: HardwareCatalogue,
    replicate: ReplicateSettings,
    *,
    period: Period | None,
    group_by: GroupBy,
    now: datetime | None = None,
) -> SpendView:
    now = now or datetime.now(UTC)
    tz, tz_name = resolve_time_zone(replicate.cost_limit.time_zone)
    spend = await period_spend(session, catalogue, period or replicate.cost_limit.period, now, tz, tz_name)
    groups = await spend_groups(session, catalogue, group_by, spend.start, spend.end, tz, now)
    return SpendView(
        period=spend.period,
        start=spend.start,
        end=spend.end,
        time_zone=tz_name,
        total_usd=_usd(spend.total),
        committed_usd=_usd(spend.committed),
        running_usd=_usd(spend.running),
        reserved_usd=_usd(spend.reserved),
        group_by=group_by,
        groups=[SpendGroup(key=g["key"], usd=_usd(g["usd"])) for g in groups],
    )


async def current_spend(
    session: AsyncSession, catalogue: HardwareCatalogue, replicate: ReplicateSettings, now: datetime
) -> PeriodSpend:
    tz, tz_name = resolve_time_zone(replicate.cost_limit.time_zone)
    return await period_spend(session, catalogue, replicate.cost_limit.period, now, tz, tz_name)


async def cost_limit_status(
    session: AsyncSession,
    catalogue: HardwareCatalogue,
    replicate: ReplicateSettings,
    now: datetime | None = None,
) -> CostLimitStatusView:
    now = now or datetime.now(UTC)
    settings = replicate.cost_limit
    limit = settings.domain()
    tz, tz_name = resolve_time_zone(settings.time_zone)
    spend = await period_spend(session, catalogue, limit.period, now, tz, tz_name)
    status = limit_status(spend.total, limit, now, tz)
    percent = None
    if limit.active and limit.amount:
        percent = float(round(spend.total / limit.amount * 100, 1))
    return CostLimitStatusView(
        enabled=settings.enabled,
        amount_usd=_usd(settings.amount) if settings.amount is not None else None,
        period=limit.period,
        action=limit.action,
        cancel_running_at_limit=limit.cancel_running_at_limit,
        cancel_on=limit.cancel_on,
        time_zone=tz_name,
        spent_usd=_usd(spend.committed + spend.running),
        reserved_usd=_usd(spend.reserved),
        committed_total_usd=_usd(spend.total),
        projected_usd=_usd(spend.committed + spend.projected_running + spend.reserved),
        limit_usd=_usd(limit.amount) if limit.active and limit.amount is not None else None,
        percent=percent,
        state=status.state,
        period_start=status.period_start,
        resets_at=status.resets_at,
        next=_what_next(status.state, limit, status.resets_at, running_jobs_cancel(spend, limit)),
    )


@dataclass(frozen=True)
class CancelCheck:
    """What `cancel_running_at_limit` compares with the amount, and whether it cancels now. The
    worker's canceller and the status's words both come from here, so they cannot disagree."""

    figure: Decimal  # finished jobs + running jobs' accrued (or projected) cost; reservations aside
    reached: bool
    basis: str  # what the figure is, in words: reservations are not in it

    def sentence(self, limit: CostLimit) -> str:
        amount = limit_usd(limit)
        figure = usd_beside(self.figure, limit)
        if self.reached:
            return f"Running and queued jobs are canceled: the period's {self.basis} is {figure} of {amount}."
        return (
            f"Running jobs are canceled once the period's {self.basis} (reservations aside) reaches "
            f"{amount} (now {figure})."
        )


def running_jobs_cancel(spend: PeriodSpend, limit: CostLimit) -> CancelCheck | None:
    """None unless running jobs are canceled at this limit."""
    if not (limit.active and limit.cancel_running_at_limit and limit.amount is not None):
        return None
    if limit.cancel_on == "projected":
        running, basis = spend.projected_running, "projected cost"
    else:
        running, basis = spend.accrued_running, "spend so far"
    figure = spend.committed + running
    return CancelCheck(figure, figure >= limit.amount, basis)


def _what_next(state: str, limit: CostLimit, resets_at: datetime, cancel: CancelCheck | None) -> str:
    if not limit.active:
        return "No cost limit is set: submissions are not checked against a budget."
    resets = f"{resets_at:%Y-%m-%d %H:%M} UTC"
    running = f" {cancel.sentence(limit)}" if cancel is not None else ""
    if state == "exceeded":
        if limit.action == "block":
            action = "New submissions are refused"
        else:
            action = "New submissions go through with a warning"
        return f"{action} until the period resets ({resets}).{running}"
    if limit.action == "block":
        return (
            f"A submission is refused when its high estimate would not fit under the limit; resets {resets}."
            f"{running}"
        )
    return f"Submissions past the limit go through with a warning; resets {resets}.{running}"


# Money in sentences: a limit keeps its own decimals ($0.285, not $0.29), and a figure beside it gets
# at least as many, and more while rounding would hide which side of the limit it is on (or make a
# cost read as nothing).
MAX_PLACES = 6


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(2, -exponent) if isinstance(exponent, int) else 2


def _dollars(value: Decimal, places: int) -> str:
    return f"${value:,.{places}f}"


def limit_usd(limit: CostLimit) -> str:
    amount = limit.amount or Decimal(0)
    return _dollars(amount, min(_places(amount), MAX_PLACES))


def usd_beside(value: Decimal, limit: CostLimit) -> str:
    """`value` in a sentence that also shows the limit: never rounded onto or across it, nor to zero."""
    amount = limit.amount or Decimal(0)
    places = min(_places(amount), MAX_PLACES)
    while places < MAX_PLACES:
        shown = round(value, places)
        same_side = (value > amount) == (shown > amount) and (value < amount) == (shown < amount)
        if same_side and (shown != 0 or value == 0):
            break
        places += 1
    return _dollars(value, places)


def _usd(value: Decimal) -> str:
    return money(value) or "0"
