"""`GET /api/cloud/configs` and `GET /api/cloud/configs/{name}`: the named environments in the configs
folder, and one parsed with its problems listed (secret-looking values redacted)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from simpletuner_cloud.api.deps import SettingsDep
from simpletuner_cloud.services import datasets

router = APIRouter(tags=["configs"])


class ConfigSummaryResponse(BaseModel):
    name: str
    path: str
    model_family: str | None
    model_type: str | None
    description: str | None
    datasets: int
    problems: list[str]


class ConfigListResponse(BaseModel):
    configs_dir: str
    configs: list[ConfigSummaryResponse]


class ConfigResponse(BaseModel):
    name: str | None
    source: str
    config_path: str | None
    dataloader_path: str | None
    config: dict[str, Any]
    datasets: list[dict[str, Any]]
    lycoris: dict[str, Any] | None
    problems: list[str]


@router.get("/configs", response_model=ConfigListResponse)
def list_configs(settings: SettingsDep) -> dict[str, Any]:
    return datasets.list_configs(settings)


@router.get("/configs/{name}", response_model=ConfigResponse)
def get_config(name: str, settings: SettingsDep) -> dict[str, Any]:
    return datasets.get_config(settings, name)
