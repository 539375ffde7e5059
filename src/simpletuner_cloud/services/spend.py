"""What this tool's jobs cost in a budget period, computed in SQL: finished jobs (their recorded
cost), running jobs (accrued from `started_at`, never less than their reservation), and reservations
of jobs not yet running. A deleted job's cost still counts (`deleted_job_costs`, read with the jobs
by `finished_costs`), so deleting history never gives budget back. What an active job counts for is
decided once (`active_costs`), so the period's total and its groups always add up. The period
follows the calendar of the cost limit's time zone (default: the machine's). Money is `Decimal` from
the database to the answer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Subquery, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import Period, next_period_start, period_start
from simpletuner_cloud.domain.estimate import projected_cost
from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, JobStatus
from simpletuner_cloud.domain.progress import TrainingProgress
from simpletuner_cloud.services.job_views import rate_of
from simpletuner_cloud.store.tables import DeletedJobCostRow, JobRow

TERMINAL = [s.value for s in TERMINAL_STATUSES]
ACTIVE = [s.value for s in JobStatus if s not in TERMINAL_STATUSES]
GroupBy = Literal["day", "hardware", "config"]


@dataclass(frozen=True)
class PeriodSpend:
    period: Period
    start: datetime
    end: datetime
    time_zone: str
    committed: Decimal  # finished jobs, deleted ones included
    running: Decimal  # running jobs: accrued so far, at least their reservation
    reserved: Decimal  # jobs not running yet: their reservations
    projected_running: Decimal  # running jobs' projected final cost (their measured step rate)
    accrued_running: Decimal = Decimal(0)  # running jobs' cost so far, reservations aside

    @property
    def total(self) -> Decimal:
        return self.committed + self.running + self.reserved


def machine_time_zone() -> tuple[tzinfo, str]:
    """The machine's IANA zone (TZ, /etc/timezone, the /etc/localtime link), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return UTC, "UTC"


def resolve_time_zone(name: str | None) -> tuple[tzinfo, str]:
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return machine_time_zone()


@dataclass(frozen=True)
class ActiveCost:
    """What one job not finished yet counts for in the current period."""

    hardware: str
    config_name: str
    counted: Decimal  # running: accrued, never less than the reservation; not running: the reservation
    accrued: Decimal  # running: the cost so far (0 before it starts)
    projected: Decimal  # running: the projected final cost, at least the accrued one
    running: bool


_ACTIVE_COLUMNS = (
    JobRow.hardware,
    JobRow.config_name,
    JobRow.started_at,
    JobRow.reserved_cost_usd,
    JobRow.progress,
)


async def active_costs(
    session: AsyncSession, catalogue: HardwareCatalogue, now: datetime
) -> list[ActiveCost]:
    """Every active job's count (active jobs are few; a running one's accrual needs its own rate)."""
    rows = (await session.execute(select(*_ACTIVE_COLUMNS).where(JobRow.status.in_(ACTIVE)))).all()
    return [_active_cost(catalogue, now, *row) for row in rows]


def _active_cost(
    catalogue: HardwareCatalogue,
    now: datetime,
    hardware: str,
    config_name: str,
    started_at: datetime | None,
    reservation: Decimal | None,
    progress: dict[str, Any] | None,
) -> ActiveCost:
    reserved = Decimal(reservation or 0)
    if started_at is None:
        return ActiveCost(hardware, config_name, reserved, Decimal(0), Decimal(0), running=False)
    rate = rate_of(catalogue, hardware)
    seconds = max(0.0, (now - started_at).total_seconds())
    accrued = rate * Decimal(str(round(seconds, 3)))
    training = TrainingProgress.from_dict(progress)
    final = projected_cost(
        accrued_seconds=seconds, step=training.step, total_steps=training.total_steps,
        seconds_per_step=training.seconds_per_step, usd_per_second=rate,
    )  # fmt: skip
    projected = max(final or accrued, accrued)
    return ActiveCost(hardware, config_name, max(accrued, reserved), accrued, projected, running=True)


def finished_costs(start: datetime, end: datetime) -> Subquery:
    """Every job finished in the window, deleted or not: (completed_at, hardware, config_name, cost)."""
    kept = select(
        JobRow.completed_at, JobRow.hardware, JobRow.config_name, JobRow.actual_cost_usd.label("cost")
    ).where(JobRow.status.in_(TERMINAL), JobRow.completed_at >= start, JobRow.completed_at < end)
    deleted = select(
        DeletedJobCostRow.completed_at,
        DeletedJobCostRow.hardware,
        DeletedJobCostRow.config_name,
        DeletedJobCostRow.cost_usd.label("cost"),
    ).where(DeletedJobCostRow.completed_at >= start, DeletedJobCostRow.completed_at < end)
    return union_all(kept, deleted).subquery("finished")


async def period_spend(
    session: AsyncSession,
    catalogue: HardwareCatalogue,
    period: Period,
    now: datetime,
    tz: tzinfo,
    tz_name: str,
) -> PeriodSpend:
    start, end = period_start(period, now, tz), next_period_start(period, now, tz)
    committed, active = await _finished_and_active(session, catalogue, start, end, now)
    running = [a for a in active if a.running]
    return PeriodSpend(
        period,
        start,
        end,
        tz_name,
        Decimal(committed or 0),
        sum((a.counted for a in running), Decimal(0)),
        sum((a.counted for a in active if not a.running), Decimal(0)),
        sum((a.projected for a in running), Decimal(0)),
        sum((a.accrued for a in running), Decimal(0)),
    )


async def _finished_and_active(
    session: AsyncSession, catalogue: HardwareCatalogue, start: datetime, end: datetime, now: datetime
) -> tuple[Decimal, list[ActiveCost]]:
    """The window's finished total and every active job, in one statement: two reads are two
    snapshots on PostgreSQL (and SQLite outside a write), and a job finishing between them would be
    in neither (a submission let past the limit) or, read the other way round, in both (running
    jobs canceled for a cost counted twice). The total comes on every row, beside no job when none
    is active."""
    finished = finished_costs(start, end)
    total = select(func.coalesce(func.sum(finished.c.cost), 0).label("committed")).subquery("committed")
    query = select(total.c.committed, *_ACTIVE_COLUMNS).select_from(
        total.outerjoin(JobRow, JobRow.status.in_(ACTIVE))
    )
    rows = (await session.execute(query)).all()
    committed = Decimal(rows[0][0] or 0)
    active = [_active_cost(catalogue, now, *row[1:]) for row in rows if row[1] is not None]
    return committed, active


async def spend_groups(
    session: AsyncSession,
    catalogue: HardwareCatalogue,
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    now: datetime,
) -> list[dict[str, Any]]:
    """Finished jobs' cost in the window (deleted ones included) by hardware or config (GROUP BY in
    SQL), or by local day (the window's rows, two columns each); jobs not finished count today (by
    day) or in their own group, for what `period_spend` counts them (`active_costs`), so the groups
    add up to its total."""
    window = finished_costs(start, end)
    totals: dict[str, Decimal] = {}
    if group_by in ("hardware", "config"):
        column = window.c.hardware if group_by == "hardware" else window.c.config_name
        rows = (
            await session.execute(select(column, func.coalesce(func.sum(window.c.cost), 0)).group_by(column))
        ).all()
        totals = {str(key): Decimal(value or 0) for key, value in rows}
    else:
        day = start.astimezone(tz).date()
        last = (end.astimezone(tz)).date()
        while day < last:
            totals[day.isoformat()] = Decimal(0)
            day = day.fromordinal(day.toordinal() + 1)
        finished = (await session.execute(select(window.c.completed_at, window.c.cost))).all()
        for completed_at, cost in finished:
            if completed_at is None:
                continue
            key = completed_at.astimezone(tz).date().isoformat()
            totals[key] = totals.get(key, Decimal(0)) + Decimal(cost or 0)
    if start <= now < end:
        today = now.astimezone(tz).date().isoformat()
        for active in await active_costs(session, catalogue, now):
            key = {"hardware": active.hardware, "config": active.config_name}.get(group_by) or today
            totals[key] = totals.get(key, Decimal(0)) + active.counted
    return [{"key": key, "usd": value} for key, value in totals.items()]
