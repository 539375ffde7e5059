"""Cost limits: the budget periods (UTC calendar day, ISO week starting Monday, calendar month), what
was spent in each, and whether a limit is ok, close (warn) or exceeded. Pure: callers pass `now`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, get_args

from simpletuner_cloud.domain.hardware import cost_for_seconds

Period = Literal["daily", "weekly", "monthly"]
LimitAction = Literal["warn", "block"]
LimitState = Literal["ok", "warn", "exceeded"]

PERIODS: tuple[Period, ...] = get_args(Period)
# The billing answer names windows by their noun ("spend this day/week/month").
PERIOD_NOUNS: dict[Period, str] = {"daily": "day", "weekly": "week", "monthly": "month"}
DEFAULT_WARN_RATIO = Decimal("0.8")


def period_start(period: Period, now: datetime) -> datetime:
    """Start of the window holding `now`, in UTC. Replicate bills in UTC and a person travelling
    should not see their month change; weeks start on Monday (ISO 8601)."""
    if now.tzinfo is None:
        raise ValueError("period_start needs an aware datetime")
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def next_period_start(period: Period, now: datetime) -> datetime:
    """When the window holding `now` resets."""
    start = period_start(period, now)
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class CostLimit:
    amount: Decimal | None
    period: Period = "monthly"
    action: LimitAction = "warn"
    enabled: bool = False
    warn_ratio: Decimal = DEFAULT_WARN_RATIO  # share of the amount from which the state is `warn`

    @property
    def active(self) -> bool:
        return self.enabled and self.amount is not None


@dataclass(frozen=True)
class LimitStatus:
    state: LimitState
    spent: Decimal
    remaining: Decimal | None  # None when no limit is active
    period_start: datetime
    resets_at: datetime


def limit_status(spent: Decimal, limit: CostLimit, now: datetime) -> LimitStatus:
    """`exceeded` once spending reaches the amount (a job at exactly the limit may not start
    another one), `warn` from `warn_ratio` of it, else `ok`. No active limit is always `ok`."""
    start, resets = period_start(limit.period, now), next_period_start(limit.period, now)
    if not limit.active or limit.amount is None:
        return LimitStatus("ok", spent, None, start, resets)
    remaining = max(limit.amount - spent, Decimal(0))
    if spent >= limit.amount:
        state: LimitState = "exceeded"
    elif spent >= limit.amount * limit.warn_ratio:
        state = "warn"
    else:
        state = "ok"
    return LimitStatus(state, spent, remaining, start, resets)


@dataclass(frozen=True)
class SpendEntry:
    """One job's cost, attributed to one instant: completion for finished jobs, `now` for running
    ones (their accrued estimate so far). A job spanning midnight counts in the day it ended."""

    at: datetime
    usd: Decimal


def spend_by_period(entries: Iterable[SpendEntry], now: datetime) -> dict[Period, Decimal]:
    starts = {period: period_start(period, now) for period in PERIODS}
    totals: dict[Period, Decimal] = dict.fromkeys(PERIODS, Decimal(0))
    for entry in entries:
        if entry.at > now:
            continue  # a timestamp from the future (skewed clock) belongs to no finished window
        for period, start in starts.items():
            if entry.at >= start:
                totals[period] += entry.usd
    return totals


def accrued_cost(started_at: datetime, now: datetime, usd_per_second: Decimal) -> Decimal:
    """Estimate for a job still running: only active time is billed, from `started_at`."""
    return cost_for_seconds(usd_per_second, (now - started_at).total_seconds())
