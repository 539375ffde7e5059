"""Costs: the estimate before submit, the spend of a period for the chart, and the cost limit's
status. Money in every answer is a decimal string."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from simpletuner_cloud.api.deps import SessionDep, SettingsDep
from simpletuner_cloud.api.routes.jobs import SubmitJobRequest
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.domain.budget import Period
from simpletuner_cloud.services import costs
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.job_views import EstimateView
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.services.spend import GroupBy
from simpletuner_cloud.services.submit import estimate_submission

router = APIRouter(tags=["costs"])


@router.post("/cost-estimate", response_model=EstimateView)
async def cost_estimate(
    body: SubmitJobRequest, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> EstimateView:
    """The same body as `POST /api/cloud/jobs/submit`; nothing is uploaded or created."""
    return await estimate_submission(session, settings, body.to_service(None), runtime.environ)


@router.get("/spend", response_model=costs.SpendView)
async def spend(
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    period: Annotated[Period | None, Query(description="Default: the cost limit's period.")] = None,
    group_by: Annotated[GroupBy, Query()] = "day",
) -> costs.SpendView:
    replicate = await load_replicate_settings(session, settings)
    return await costs.spend_view(
        session,
        load_hardware_catalogue(settings),
        replicate,
        period=period,
        group_by=group_by,
        now=_now(runtime),
    )


@router.get("/cost-limit/status", response_model=costs.CostLimitStatusView)
async def cost_limit_status(
    session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> costs.CostLimitStatusView:
    replicate = await load_replicate_settings(session, settings)
    return await costs.cost_limit_status(session, load_hardware_catalogue(settings), replicate, _now(runtime))


def _now(runtime: object) -> datetime:
    clock = getattr(runtime, "now", None)
    return clock() if callable(clock) else datetime.now(UTC)
