"""`/api/cloud/publishing`: where trained models go (Hub, external S3, local download), the S3 test
button and the Hub token check. Thin: parse, call one service function, answer. Secrets are accepted,
never returned."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from simpletuner_cloud.api.deps import SessionDep, SettingsDep
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.services.external_s3 import S3TestView
from simpletuner_cloud.services.hugging_face import HubCheckView
from simpletuner_cloud.services.publishing import (
    Delivery,
    PublishingView,
    load_publishing,
    publishing_view,
    update_publishing,
)
from simpletuner_cloud.services.publishing_checks import test_hub_token, test_s3

router = APIRouter(prefix="/publishing", tags=["publishing"])
SECRET = Field(None, max_length=512, description="Write-only: saved in the secret store, never returned.")


class HubRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    push_to_hub: bool | None = None
    hub_model_id: str | None = Field(None, max_length=200)
    private: bool | None = None
    token: str | None = SECRET


class S3Request(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    endpoint_url: str | None = Field(None, max_length=2048)
    region: str | None = Field(None, max_length=64)
    bucket: str | None = Field(None, max_length=63)
    prefix: str | None = Field(None, max_length=512)
    public_base_url: str | None = Field(None, max_length=2048)
    access_key: str | None = SECRET
    secret_key: str | None = SECRET


class LocalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_object_bytes: int | None = None


class PublishingRequest(BaseModel):
    """Only the keys sent change; `null` resets a setting to its default or deletes a saved secret."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    default_delivery: Delivery | None = None
    hub: HubRequest | None = None
    s3: S3Request | None = None
    local: LocalRequest | None = None


class HubTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    token: str | None = Field(None, max_length=512, description="Check this token instead of the saved one.")


class PublishingUpdateView(PublishingView):
    hub_check: HubCheckView | None = Field(description="The new token's check, when one was sent.")


@router.get("", response_model=PublishingView)
async def get_publishing(session: SessionDep, settings: SettingsDep, runtime: RuntimeDep) -> PublishingView:
    return publishing_view(await load_publishing(session, settings, runtime.environ), settings)


@router.put("", response_model=PublishingUpdateView)
async def put_publishing(
    body: PublishingRequest, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> PublishingUpdateView:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    await update_publishing(session, settings, changes)
    token = (changes.get("hub") or {}).get("token")
    check = await test_hub_token(session, settings, None, runtime.environ) if token else None
    view = publishing_view(await load_publishing(session, settings, runtime.environ), settings)
    return PublishingUpdateView(**view.model_dump(), hub_check=check)


@router.post("/s3/test", response_model=S3TestView)
async def s3_test(
    session: SessionDep, settings: SettingsDep, runtime: RuntimeDep, body: S3Request | None = None
) -> S3TestView:
    """Writes, reads back and deletes a small object; `ok: false` names the step that failed."""
    changes = body.model_dump(exclude_unset=True) if body is not None else {}
    return await test_s3(session, settings, changes, runtime.environ)


@router.post("/hub/test", response_model=HubCheckView)
async def hub_test(
    session: SessionDep, settings: SettingsDep, runtime: RuntimeDep, body: HubTestRequest | None = None
) -> HubCheckView:
    """whoami at the Hub (HF_ENDPOINT, or the sandbox's Hub in sandbox mode); `unreachable` offline."""
    return await test_hub_token(session, settings, body.token if body else None, runtime.environ)
