"""`GET /api/cloud/hardware`: the hardware profiles, their per-second and per-hour prices and the
trainer model each maps to (prices come from the catalogue file, not code)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from simpletuner_cloud.api.deps import SettingsDep
from simpletuner_cloud.api.routes.provider_schemas import HardwareResponse
from simpletuner_cloud.services.hardware_catalogue import hardware_answer, load_hardware_catalogue

router = APIRouter(tags=["hardware"])


@router.get("/hardware", response_model=HardwareResponse)
async def list_hardware(settings: SettingsDep) -> dict[str, Any]:
    return hardware_answer(load_hardware_catalogue(settings))
