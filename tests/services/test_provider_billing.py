"""Billing: no invented balance; spend per day/week/month from this tool's own jobs (recorded through
the store's repository functions, read back from the database); the cost limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simpletuner_cloud.services.billing import billing_summary
from simpletuner_cloud.services.hardware_catalogue import hardware_answer, packaged_catalogue
from simpletuner_cloud.services.provider_settings import update_replicate_settings
from simpletuner_cloud.settings import Settings, load_settings
from simpletuner_cloud.store.database import Database
from tests.support.provider_sandbox import record_job

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
async def database(state_root: Any) -> AsyncIterator[Database]:
    settings = load_settings()
    db = Database(settings.effective_database_url)
    await db.migrate()
    yield db
    await db.dispose()


async def test_spend_windows_limit_and_price_table(database: Database) -> None:
    """Jobs recorded through the store in and out of each window; read back in a fresh session."""
    settings: Settings = load_settings()
    async with database.session() as session:
        # today, recorded cost
        await record_job(session, "succeeded", completed=NOW - timedelta(hours=1), cost="1.5")
        # running on a100 for 1000 s: accrues 1.4 (counted now)
        await record_job(session, "running", hardware="a100", started=NOW - timedelta(seconds=1000))
        # Monday this week, finished with no recorded cost (no metrics): no billable time
        start = NOW - timedelta(days=2, hours=1)
        await record_job(session, "succeeded", started=start, completed=start + timedelta(hours=1))
        # failed public-model run with no recorded cost: free
        await record_job(
            session, "failed", started=NOW - timedelta(hours=3), completed=NOW - timedelta(hours=2)
        )
        # Sunday: last week, this month
        await record_job(session, "canceled", completed=datetime(2025, 1, 12, 23, 59, tzinfo=UTC), cost="2")
        # last day of last month: outside every window
        await record_job(session, "succeeded", completed=datetime(2024, 12, 31, 23, 59, tzinfo=UTC), cost="9")
        # queued, never started: nothing yet
        await record_job(session, "queued")
        await session.commit()
    async with database.session() as session:
        await update_replicate_settings(
            session,
            settings,
            {
                "cost_limit": {
                    "enabled": True,
                    "amount": 10,
                    "period": "weekly",
                    "action": "block",
                    "time_zone": "UTC",
                }
            },
        )
    async with database.session() as session:
        answer = (await billing_summary(session, settings, now=NOW)).model_dump()
    assert answer == {
        "provider": "replicate",
        "balance": None,
        "balance_reason": "Replicate has no public API for account balance",
        "account_url": "https://replicate.com/account/billing",
        "currency": "USD",
        "as_of": "2025-01-15T12:00:00+00:00",
        "spend": {"day": 2.9, "week": 2.9, "month": 4.9},
        "spend_note": "Jobs started by this tool only; running jobs count their cost so far (at least their "
        "reservation) and jobs not running yet their reservation.",
        "cost_limit": {
            "enabled": True,
            "amount": 10.0,
            "period": "weekly",
            "action": "block",
            "cancel_running_at_limit": False,
            "cancel_on": "accrued",
            "time_zone": "UTC",
            "state": "ok",
            "spent": 2.9,
            "remaining": 7.1,
            "period_start": "2025-01-13T00:00:00+00:00",
            "resets_at": "2025-01-20T00:00:00+00:00",
        },
        "hardware": hardware_answer(packaged_catalogue()).model_dump()["hardware"],
        "sandbox": False,
    }
    async with database.session() as session:  # a minute later the running job has accrued 60 s more
        later = await billing_summary(session, settings, now=NOW + timedelta(minutes=1))
    assert later.spend == {"day": 2.984, "week": 2.984, "month": 4.984}


async def test_limit_warns_then_is_exceeded(database: Database) -> None:
    settings = load_settings()
    async with database.session() as session:
        await update_replicate_settings(
            session,
            settings,
            {"cost_limit": {"enabled": True, "amount": 2, "period": "daily", "time_zone": "UTC"}},
        )
        await record_job(session, "succeeded", completed=NOW, cost="1.7")
        await session.commit()
    async with database.session() as session:
        warned = (await billing_summary(session, settings, now=NOW)).cost_limit.model_dump()
        await record_job(session, "succeeded", completed=NOW, cost="0.5")
        await session.commit()
    async with database.session() as session:
        exceeded = (await billing_summary(session, settings, now=NOW)).cost_limit.model_dump()
    assert (warned["state"], warned["remaining"]) == ("warning", 0.3)
    assert (exceeded["state"], exceeded["remaining"], exceeded["spent"]) == ("exceeded", 0.0, 2.2)
