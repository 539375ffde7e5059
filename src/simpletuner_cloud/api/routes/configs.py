"""`GET /api/cloud/configs` and `GET /api/cloud/configs/{name}`: the named environments in the configs
folder, and one parsed with its problems listed (secret-looking values redacted)."""

from __future__ import annotations

from fastapi import APIRouter

from simpletuner_cloud.api.deps import SettingsDep
from simpletuner_cloud.services import datasets
from simpletuner_cloud.services.dataset_views import ConfigListResponse, ConfigResponse

router = APIRouter(tags=["configs"])


@router.get("/configs", response_model=ConfigListResponse)
def list_configs(settings: SettingsDep) -> ConfigListResponse:
    return datasets.list_configs(settings)


@router.get("/configs/{name}", response_model=ConfigResponse)
def get_config(name: str, settings: SettingsDep) -> ConfigResponse:
    return datasets.get_config(settings, name)
