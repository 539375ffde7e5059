"""`GET /api/cloud/providers/replicate/billing`: `balance: null` (Replicate has no balance API), the
spend of this tool's own jobs per day/week/month, the cost limit and the price table. No Replicate
call is involved; the clock is the provider runtime's, fixed here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from simpletuner_cloud.services.hardware_catalogue import hardware_answer, packaged_catalogue
from simpletuner_cloud.services.provider import ProviderRuntime
from tests.support.provider_sandbox import record_job

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # a Wednesday


def expected_billing(spend: dict[str, float], **limit: Any) -> dict[str, Any]:
    return {
        "provider": "replicate",
        "balance": None,
        "balance_reason": "Replicate has no public API for account balance",
        "account_url": "https://replicate.com/account/billing",
        "currency": "USD",
        "as_of": "2025-01-15T12:00:00+00:00",
        "spend": spend,
        "spend_note": "Jobs started by this tool only; running jobs count their cost so far (at least their "
        "reservation) and jobs not running yet their reservation.",
        "cost_limit": {
            "enabled": False,
            "amount": None,
            "period": "monthly",
            "action": "warn",
            "cancel_running_at_limit": False,
            "cancel_on": "accrued",
            "time_zone": None,
            "state": "ok",
            "spent": spend["month"],
            "remaining": None,
            "period_start": "2025-01-01T00:00:00+00:00",
            "resets_at": "2025-02-01T00:00:00+00:00",
            **limit,
        },
        "hardware": hardware_answer(packaged_catalogue()).model_dump()["hardware"],
        "sandbox": False,
    }


async def test_billing_endpoint_never_invents_a_balance(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.provider_runtime = ProviderRuntime(now=lambda: NOW)
    response = await client.get("/api/cloud/providers/replicate/billing")
    assert response.status_code == 200
    assert response.json() == expected_billing({"day": 0.0, "week": 0.0, "month": 0.0})


async def test_billing_endpoint_sums_this_tools_jobs(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.provider_runtime = ProviderRuntime(now=lambda: NOW)
    async with app.state.database.session() as session:
        await record_job(session, "succeeded", completed=NOW - timedelta(hours=1), cost="1.25")
        await record_job(session, "running", hardware="a100", started=NOW - timedelta(seconds=100))
        await record_job(session, "succeeded", completed=NOW - timedelta(days=1), cost="3")  # Tuesday
        await session.commit()
    limit = {"enabled": True, "amount": 1.5, "period": "daily", "action": "block"}
    assert (await client.put("/api/cloud/providers/replicate", json={"cost_limit": limit})).status_code == 200
    response = await client.get("/api/cloud/providers/replicate/billing")
    assert response.json() == expected_billing(
        {"day": 1.39, "week": 4.39, "month": 4.39},
        **limit,
        state="warning",
        spent=1.39,
        remaining=0.11,
        period_start="2025-01-15T00:00:00+00:00",
        resets_at="2025-01-16T00:00:00+00:00",
    )
