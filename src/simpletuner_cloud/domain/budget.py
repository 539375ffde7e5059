"""Cost limits: the budget periods (calendar day, ISO week starting Monday, calendar month, in a time
zone), what was spent in each, and whether a limit is ok, close (warning) or exceeded. Pure: callers
pass `now` and the time zone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Literal, get_args

from simpletuner_cloud.domain.hardware import cost_for_seconds

Period = Literal["daily", "weekly", "monthly"]
LimitAction = Literal["warn", "block"]
LimitState = Literal["ok", "warning", "exceeded"]

PERIODS: tuple[Period, ...] = get_args(Period)
# The billing answer names windows by their noun ("spend this day/week/month").
PERIOD_NOUNS: dict[Period, str] = {"daily": "day", "weekly": "week", "monthly": "month"}
DEFAULT_WARN_RATIO = Decimal("0.8")
COST_LIMIT_REACHED = "cost_limit_reached"  # the error code of a job the limit's canceller stopped


def period_start(period: Period, now: datetime, tz: tzinfo = UTC) -> datetime:
    """Start of the calendar window holding `now` in the time zone `tz`, as an aware UTC instant.
    Days start at local midnight (a DST day is 23 or 25 hours long), weeks on Monday (ISO 8601),
    months on the 1st."""
    if now.tzinfo is None:
        raise ValueError("period_start needs an aware datetime")
    local = now.astimezone(tz).date()
    if period == "daily":
        first = local
    elif period == "weekly":
        first = local - timedelta(days=local.weekday())
    elif period == "monthly":
        first = local.replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return _local_midnight(first, tz)


def next_period_start(period: Period, now: datetime, tz: tzinfo = UTC) -> datetime:
    """When the window holding `now` resets (local calendar arithmetic, not a fixed 24 h)."""
    first = period_start(period, now, tz).astimezone(tz).date()
    if period == "daily":
        following = first + timedelta(days=1)
    elif period == "weekly":
        following = first + timedelta(days=7)
    else:
        following = (first + timedelta(days=32)).replace(day=1)
    return _local_midnight(following, tz)


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class CostLimit:
    amount: Decimal | None
    period: Period = "monthly"
    action: LimitAction = "warn"
    enabled: bool = False
    warn_ratio: Decimal = DEFAULT_WARN_RATIO  # share of the amount from which the state is `warning`
    cancel_running_at_limit: bool = False
    cancel_on: Literal["accrued", "projected"] = "accrued"

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


def limit_status(spent: Decimal, limit: CostLimit, now: datetime, tz: tzinfo = UTC) -> LimitStatus:
    """`exceeded` once spending reaches the amount (a job at exactly the limit may not start
    another one), `warn` from `warn_ratio` of it, else `ok`. No active limit is always `ok`."""
    start, resets = period_start(limit.period, now, tz), next_period_start(limit.period, now, tz)
    if not limit.active or limit.amount is None:
        return LimitStatus("ok", spent, None, start, resets)
    remaining = max(limit.amount - spent, Decimal(0))
    if spent >= limit.amount:
        state: LimitState = "exceeded"
    elif spent >= limit.amount * limit.warn_ratio:
        state = "warning"
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
