"""Budget periods, spend windows and the limit status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpletuner_cloud.domain.budget import (
    CostLimit,
    SpendEntry,
    accrued_cost,
    limit_status,
    next_period_start,
    period_start,
    spend_by_period,
)

# Wednesday 2025-01-15 13:45 UTC
NOW = datetime(2025, 1, 15, 13, 45, 12, tzinfo=UTC)


def test_period_starts_in_utc_weeks_on_monday() -> None:
    assert period_start("daily", NOW) == datetime(2025, 1, 15, tzinfo=UTC)
    assert period_start("weekly", NOW) == datetime(2025, 1, 13, tzinfo=UTC)
    assert period_start("monthly", NOW) == datetime(2025, 1, 1, tzinfo=UTC)
    # 2025-01-01 01:00 in UTC+3 is still 2024-12-31 in UTC
    local = datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=3)))
    assert period_start("monthly", local) == datetime(2024, 12, 1, tzinfo=UTC)


def test_next_period_start() -> None:
    assert next_period_start("daily", NOW) == datetime(2025, 1, 16, tzinfo=UTC)
    assert next_period_start("weekly", NOW) == datetime(2025, 1, 20, tzinfo=UTC)
    assert next_period_start("monthly", datetime(2025, 12, 31, 23, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        period_start("daily", datetime(2025, 1, 1))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_now_is_inside_its_window(now: datetime) -> None:
    for period in ("daily", "weekly", "monthly"):
        assert period_start(period, now) <= now < next_period_start(period, now)  # type: ignore[arg-type]
    assert period_start("weekly", now).weekday() == 0


def test_limit_states() -> None:
    limit = CostLimit(amount=Decimal("10"), period="daily", action="block", enabled=True)
    assert limit_status(Decimal("1"), limit, NOW).state == "ok"
    assert limit_status(Decimal("8"), limit, NOW).state == "warning"
    exceeded = limit_status(Decimal("10"), limit, NOW)
    assert (exceeded.state, exceeded.remaining) == ("exceeded", Decimal(0))
    status = limit_status(Decimal("2.5"), limit, NOW)
    assert status.remaining == Decimal("7.5")
    assert status.resets_at == datetime(2025, 1, 16, tzinfo=UTC)


def test_disabled_limit_is_always_ok() -> None:
    status = limit_status(Decimal("999"), CostLimit(amount=Decimal("1"), enabled=False), NOW)
    assert (status.state, status.remaining) == ("ok", None)


def test_spend_by_period_windows() -> None:
    entries = [
        SpendEntry(NOW - timedelta(hours=1), Decimal("1")),  # today
        SpendEntry(datetime(2025, 1, 13, 0, 0, tzinfo=UTC), Decimal("2")),  # Monday: this week
        SpendEntry(datetime(2025, 1, 12, 23, 59, tzinfo=UTC), Decimal("4")),  # Sunday: this month only
        SpendEntry(datetime(2024, 12, 31, tzinfo=UTC), Decimal("8")),  # last month
        SpendEntry(NOW + timedelta(hours=1), Decimal("16")),  # future: ignored
    ]
    assert spend_by_period(entries, NOW) == {
        "daily": Decimal("1"),
        "weekly": Decimal("3"),
        "monthly": Decimal("7"),
    }


def test_accrued_cost() -> None:
    assert accrued_cost(NOW - timedelta(seconds=100), NOW, Decimal("0.001")) == Decimal("0.1")
    assert accrued_cost(NOW + timedelta(seconds=5), NOW, Decimal("0.001")) == 0


NEW_YORK = ZoneInfo("America/New_York")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def test_periods_follow_the_time_zone_calendar() -> None:
    # 02:30 UTC on 2025-01-15 is still the 14th in New York (UTC-5)
    now = datetime(2025, 1, 15, 2, 30, tzinfo=UTC)
    assert period_start("daily", now, NEW_YORK) == datetime(2025, 1, 14, 5, 0, tzinfo=UTC)
    assert period_start("monthly", now, SAO_PAULO) == datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
    assert period_start("weekly", now, NEW_YORK) == datetime(2025, 1, 13, 5, 0, tzinfo=UTC)  # Monday


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)  # clocks went forward at 02:00 local
    autumn = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)  # clocks went back at 02:00 local
    assert next_period_start("daily", spring, NEW_YORK) - period_start(
        "daily", spring, NEW_YORK
    ) == timedelta(hours=23)
    assert next_period_start("daily", autumn, NEW_YORK) - period_start(
        "daily", autumn, NEW_YORK
    ) == timedelta(hours=25)
    week = next_period_start("weekly", spring, NEW_YORK) - period_start("weekly", spring, NEW_YORK)
    assert week == timedelta(days=7, hours=-1)  # the week holding the spring change
    assert next_period_start("monthly", spring, NEW_YORK) == datetime(2025, 4, 1, 4, 0, tzinfo=UTC)  # EDT


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_now_is_inside_its_window_in_any_zone(now: datetime) -> None:
    for zone in (NEW_YORK, SAO_PAULO, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kathmandu")):
        for period in ("daily", "weekly", "monthly"):
            assert period_start(period, now, zone) <= now < next_period_start(period, now, zone)  # type: ignore[arg-type]
