"""Load the hardware price table: the packaged `domain/hardware_catalogue.json`, or the person's own
`~/.simpletuner/cloud/hardware.json` when present (prices change; they are configuration, not code)."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from simpletuner_cloud.domain.hardware import (
    HardwareCatalogue,
    HardwareProfile,
    UnknownHardware,
    catalogue_from_mapping,
)
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.settings import Settings

PACKAGED_CATALOGUE = "hardware_catalogue.json"
OVERRIDE_NAME = "hardware.json"

_cache: dict[tuple[str, float], HardwareCatalogue] = {}


def packaged_catalogue() -> HardwareCatalogue:
    text = resources.files("simpletuner_cloud.domain").joinpath(PACKAGED_CATALOGUE).read_text("utf-8")
    return catalogue_from_mapping(json.loads(text))


def find_profile(catalogue: HardwareCatalogue, hardware: str) -> HardwareProfile:
    """`catalogue.get` as an API error: an unknown name is `hardware_unknown`, naming the choices."""
    try:
        return catalogue.get(hardware)
    except UnknownHardware:
        raise CloudError(
            f"Unknown hardware {hardware!r}.",
            code="hardware_unknown",
            hint=f"Choose one of: {', '.join(catalogue.ids)} (`simpletuner cloud provider hardware`).",
        ) from None


def override_path(settings: Settings) -> Path:
    return settings.cloud_dir / OVERRIDE_NAME


def load_hardware_catalogue(settings: Settings | None = None) -> HardwareCatalogue:
    """The override file wins when it exists; it is re-read when its mtime changes, so editing it
    needs no restart. A broken override is an error naming the file, never a silent fallback to
    prices the person meant to replace."""
    path = override_path(settings) if settings is not None else None
    if path is None or not path.is_file():
        key = ("<packaged>", 0.0)
        if key not in _cache:
            _cache[key] = packaged_catalogue()
        return _cache[key]
    key = (str(path), path.stat().st_mtime)
    if key not in _cache:
        try:
            _cache[key] = catalogue_from_mapping(json.loads(path.read_text("utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CloudError(
                f"The hardware price file {path} is invalid: {exc}",
                code="config_invalid",
                hint="Fix it (same shape as the packaged hardware_catalogue.json) or delete it.",
            ) from exc
    return _cache[key]


class HardwareEntry(BaseModel):
    """One row of the price table as the API shows it (floats: JSON has no decimals)."""

    id: str
    name: str
    gpu: str
    vram_gb: int
    sku: str
    usd_per_second: float
    usd_per_hour: float
    model: str
    best_for: str
    default: bool


class HardwareResponse(BaseModel):
    default: str
    currency: str
    source: str
    hardware: list[HardwareEntry]


def profile_answer(profile: HardwareProfile, default_id: str) -> HardwareEntry:
    return HardwareEntry(
        id=profile.id,
        name=profile.name,
        gpu=profile.gpu,
        vram_gb=profile.vram_gb,
        sku=profile.sku,
        usd_per_second=float(profile.usd_per_second),
        usd_per_hour=float(round(profile.usd_per_hour, 4)),
        model=profile.model,
        best_for=profile.best_for,
        default=profile.id == default_id,
    )


def hardware_answer(catalogue: HardwareCatalogue) -> HardwareResponse:
    return HardwareResponse(
        default=catalogue.default_id,
        currency=catalogue.currency,
        source=catalogue.source,
        hardware=[profile_answer(p, catalogue.default_id) for p in catalogue],
    )


def usd(value: Decimal) -> float:
    """Money for JSON answers: full cents plus sub-cent precision, no binary-float noise."""
    return float(round(value, 6))
