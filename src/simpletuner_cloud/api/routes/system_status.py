"""`GET /api/cloud/system-status`: Replicate's status page, advisory only. Always a 200 answer:
an unreachable, slow or broken page is `indicator: "unknown"` with the reason."""

from __future__ import annotations

from fastapi import APIRouter

from simpletuner_cloud.api.deps import SessionDep, SettingsDep
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.services import provider
from simpletuner_cloud.services.provider_views import SystemStatusResponse

router = APIRouter(tags=["providers"])


@router.get("/system-status", response_model=SystemStatusResponse)
async def system_status(
    session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> SystemStatusResponse:
    return await provider.system_status(session, settings, runtime)
