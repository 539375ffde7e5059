"""The cost limit's words on a real database: the status says running jobs are canceled only when the
canceller would cancel them (the same function decides both), and money in messages keeps enough
decimals that a figure over the limit never reads as equal to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from simpletuner_cloud.domain.budget import CostLimit
from simpletuner_cloud.services.budget_gate import check_budget
from simpletuner_cloud.services.costs import cost_limit_status, current_spend, limit_usd, usd_beside
from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue
from simpletuner_cloud.services.provider_settings import CostLimitSettings, ReplicateSettings
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import Database
from simpletuner_cloud.store.jobs import apply_status
from tests.support.provider_sandbox import record_job


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database(load_settings().effective_database_url)
    await database.migrate()
    yield database
    await database.dispose()


def replicate(**limit: Any) -> ReplicateSettings:
    return ReplicateSettings(cost_limit=CostLimitSettings(enabled=True, period="daily", **limit))


async def test_the_status_says_running_jobs_are_canceled_only_when_the_canceller_cancels_them(
    db: Database,
) -> None:
    """`cancel_on: projected`, a job running for a minute with its $0.40 reservation: the total (mostly
    that reservation) is over the limit, but its projected cost is not, so nothing is canceled; the
    status said "running jobs are canceled until the period resets"."""
    now = datetime.now(UTC)
    settings = replicate(amount="0.20", cancel_running_at_limit=True, cancel_on="projected")
    catalogue = packaged_catalogue()
    async with db.session() as session:
        await record_job(session, "succeeded", completed=now - timedelta(minutes=5), cost="0.10")
        job_id = await record_job(session, "running", started=now - timedelta(seconds=60))
        await apply_status(session, job_id, "running", reserved_cost_usd=Decimal("0.40"))
        await session.commit()
        status = await cost_limit_status(session, catalogue, settings, now=now)
        spend = await current_spend(session, catalogue, settings, now)
    resets = f"{status.resets_at:%Y-%m-%d %H:%M} UTC"
    assert status.state == "exceeded"
    assert spend.committed + spend.projected_running < Decimal("0.20")  # what the canceller compares
    assert status.next == (
        f"New submissions go through with a warning until the period resets ({resets}). Running jobs are "
        "canceled once the period's projected cost (reservations aside) reaches $0.20 (now $0.16)."
    )
    reached = replicate(amount="0.15", cancel_running_at_limit=True, cancel_on="projected")
    async with db.session() as session:
        status = await cost_limit_status(session, catalogue, reached, now=now)
    assert status.next == (
        f"New submissions go through with a warning until the period resets ({resets}). Running and "
        "queued jobs are canceled: the period's projected cost is $0.16 of $0.15."
    )


def test_money_beside_a_limit_keeps_its_decimals_and_shows_which_side_it_is_on() -> None:
    def limit(amount: str) -> CostLimit:
        return CostLimit(Decimal(amount), enabled=True)

    assert limit_usd(limit("0.285")) == "$0.285"
    assert limit_usd(limit("20")) == "$20.00"
    assert usd_beside(Decimal("0.0125"), limit("0.01")) == "$0.012"
    assert usd_beside(Decimal("0.0801"), limit("0.08")) == "$0.0801"
    assert usd_beside(Decimal("0.0799"), limit("0.08")) == "$0.0799"
    assert usd_beside(Decimal("0.08"), limit("0.08")) == "$0.08"
    assert usd_beside(Decimal("0.2851"), limit("0.285")) == "$0.2851"
    assert usd_beside(Decimal("1234.5"), limit("2000")) == "$1,234.50"


async def test_the_warn_message_shows_the_spend_over_the_limit(db: Database) -> None:
    """It said "spent $0.01 ... limit $0.01 (over the limit)"."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await record_job(session, "succeeded", completed=now - timedelta(minutes=1), cost="0.0125")
        await session.commit()
        decision = await check_budget(
            session, replicate(amount="0.01"), packaged_catalogue(), Decimal("0.002"), now
        )
    assert decision.warning == (
        "Over the cost limit: spent $0.012, reserved by other jobs $0.00, this job's estimate up to $0.002, "
        "daily limit $0.01 (Warn: submitted anyway)."
    )
