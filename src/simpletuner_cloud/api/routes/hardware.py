"""`GET /api/cloud/hardware`: the hardware profiles, their per-second and per-hour prices and the
trainer model each maps to (prices come from the catalogue file, not code)."""

from __future__ import annotations

from fastapi import APIRouter

from simpletuner_cloud.api.deps import SettingsDep
from simpletuner_cloud.services.hardware_catalogue import (
    HardwareResponse,
    hardware_answer,
    load_hardware_catalogue,
)

router = APIRouter(tags=["hardware"])


@router.get("/hardware", response_model=HardwareResponse)
async def list_hardware(settings: SettingsDep) -> HardwareResponse:
    return hardware_answer(load_hardware_catalogue(settings))
