"""Billing: no invented balance; spend per day/week/month from this tool's own jobs; the cost limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from simpletuner_cloud.services.billing import billing_summary
from simpletuner_cloud.services.hardware_catalogue import hardware_answer, packaged_catalogue
from simpletuner_cloud.services.provider_settings import update_replicate_settings
from simpletuner_cloud.settings import Settings, load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import JobRow

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
async def database(state_root: Any) -> AsyncIterator[Database]:
    settings = load_settings()
    db = Database(settings.effective_database_url)
    await db.migrate()
    yield db
    await db.dispose()


def job(status: str, hardware: str = "l40s", **fields: Any) -> JobRow:
    return JobRow(
        status=status, config_name="c", hardware=hardware, model="m", spec={}, logs_offset=0, **fields
    )


async def test_spend_windows_limit_and_price_table(database: Database) -> None:
    settings: Settings = load_settings()
    async with database.session() as session:
        session.add_all(
            [
                # today, recorded cost
                job("succeeded", completed_at=NOW - timedelta(hours=1), actual_cost_usd=Decimal("1.5")),
                # running on a100 for 1000 s: accrues 1.4
                job("running", hardware="a100", started_at=NOW - timedelta(seconds=1000)),
                # Monday this week, no recorded cost: priced by run time (3600 s on l40s = 3.51)
                job(
                    "succeeded",
                    started_at=NOW - timedelta(days=2, hours=1),
                    completed_at=NOW - timedelta(days=2),
                ),
                # failed public-model run with no recorded cost: free
                job("failed", started_at=NOW - timedelta(hours=3), completed_at=NOW - timedelta(hours=2)),
                # earlier this month
                job("canceled", completed_at=datetime(2025, 1, 2, tzinfo=UTC), actual_cost_usd=Decimal("2")),
                # last month: outside every window
                job(
                    "succeeded", completed_at=datetime(2024, 12, 31, tzinfo=UTC), actual_cost_usd=Decimal("9")
                ),
                # never started
                job("queued"),
            ]
        )
        await session.commit()
        await update_replicate_settings(
            session,
            settings,
            {"cost_limit": {"enabled": True, "amount": 10, "period": "weekly", "action": "block"}},
        )
        answer = await billing_summary(session, settings, now=NOW)
    assert answer == {
        "provider": "replicate",
        "balance": None,
        "balance_reason": "Replicate has no public API for account balance",
        "account_url": "https://replicate.com/account/billing",
        "currency": "USD",
        "as_of": "2025-01-15T12:00:00+00:00",
        "spend": {"day": 2.9, "week": 6.41, "month": 8.41},
        "spend_note": "Jobs started by this tool only; running jobs count their cost so far.",
        "cost_limit": {
            "enabled": True,
            "amount": 10.0,
            "period": "weekly",
            "action": "block",
            "state": "ok",
            "spent": 6.41,
            "remaining": 3.59,
            "period_start": "2025-01-13T00:00:00+00:00",
            "resets_at": "2025-01-20T00:00:00+00:00",
        },
        "hardware": hardware_answer(packaged_catalogue())["hardware"],
        "sandbox": False,
    }


async def test_limit_warns_then_is_exceeded(database: Database) -> None:
    settings = load_settings()
    async with database.session() as session:
        await update_replicate_settings(
            session, settings, {"cost_limit": {"enabled": True, "amount": 2, "period": "daily"}}
        )
        session.add(job("succeeded", completed_at=NOW, actual_cost_usd=Decimal("1.7")))
        await session.commit()
        warned = (await billing_summary(session, settings, now=NOW))["cost_limit"]
        session.add(job("succeeded", completed_at=NOW, actual_cost_usd=Decimal("0.5")))
        await session.commit()
        exceeded = (await billing_summary(session, settings, now=NOW))["cost_limit"]
    assert (warned["state"], warned["remaining"]) == ("warn", 0.3)
    assert (exceeded["state"], exceeded["remaining"], exceeded["spent"]) == ("exceeded", 0.0, 2.2)
