"""What this tool knows about money: Replicate has no public balance API, so the answer says so
(`balance: null`) and shows only facts it owns: spend of its own jobs per day/week/month (the same
figures as `GET /api/cloud/spend`: finished, running so far, and reserved), the cost limit's status
and the hardware price table."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import (
    PERIOD_NOUNS,
    PERIODS,
    limit_status,
)
from simpletuner_cloud.services.hardware_catalogue import (
    HardwareEntry,
    hardware_answer,
    load_hardware_catalogue,
    usd,
)
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.services.provider_views import CostLimitSettingsResponse
from simpletuner_cloud.services.spend import period_spend, resolve_time_zone
from simpletuner_cloud.settings import Settings

BALANCE_REASON = "Replicate has no public API for account balance"
ACCOUNT_URL = "https://replicate.com/account/billing"
SPEND_NOTE = (
    "Jobs started by this tool only; running jobs count their cost so far (at least their "
    "reservation) and jobs not running yet their reservation."
)


class CostLimitStatus(CostLimitSettingsResponse):
    state: str  # ok | warning | exceeded
    spent: float
    remaining: float | None
    period_start: str
    resets_at: str


class BillingResponse(BaseModel):
    provider: str
    balance: None  # Replicate has no balance API: never invented
    balance_reason: str
    account_url: str
    currency: str
    as_of: str
    spend: dict[str, float]  # day, week, month
    spend_note: str
    cost_limit: CostLimitStatus
    hardware: list[HardwareEntry]
    sandbox: bool


async def billing_summary(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> BillingResponse:
    now = now or datetime.now(UTC)
    catalogue = load_hardware_catalogue(settings)
    replicate = await load_replicate_settings(session, settings)
    tz, tz_name = resolve_time_zone(replicate.cost_limit.time_zone)
    totals = {
        period: (await period_spend(session, catalogue, period, now, tz, tz_name)).total for period in PERIODS
    }
    limit = replicate.cost_limit.domain()
    status = limit_status(totals[limit.period], limit, now, tz)
    return BillingResponse(
        provider="replicate",
        balance=None,
        balance_reason=BALANCE_REASON,
        account_url=ACCOUNT_URL,
        currency=catalogue.currency,
        as_of=now.isoformat(),
        spend={PERIOD_NOUNS[period]: usd(total) for period, total in totals.items()},
        spend_note=SPEND_NOTE,
        cost_limit=CostLimitStatus(
            **replicate.cost_limit.answer().model_dump(),
            state=status.state,
            spent=usd(status.spent),
            remaining=usd(status.remaining) if status.remaining is not None else None,
            period_start=status.period_start.isoformat(),
            resets_at=status.resets_at.isoformat(),
        ),
        hardware=hardware_answer(catalogue).hardware,
        sandbox=settings.sandbox,
    )
