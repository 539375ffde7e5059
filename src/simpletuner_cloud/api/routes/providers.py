"""`/api/cloud/providers...`: the seed's provider API (validate, token, versions, billing, settings).
Thin: parse, call one service function, return."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from simpletuner_cloud.api.deps import SessionDep, SettingsDep
from simpletuner_cloud.services import billing, provider, webhook_selftest
from simpletuner_cloud.services.billing import BillingResponse
from simpletuner_cloud.services.provider_fields import (
    Action,
    Consent,
    HardwareId,
    IpOrNetwork,
    ModelRef,
    Period,
    ProxyUrl,
    PublicUrl,
    TimeZoneName,
    UsdAmount,
    VersionId,
)
from simpletuner_cloud.services.provider_settings import (
    MAX_LIST_ITEMS,
    load_replicate_settings,
    settings_answer,
    update_replicate_settings,
)
from simpletuner_cloud.services.provider_views import (
    ProvidersResponse,
    ReplicateSettingsResponse,
    TokenDeletedResponse,
    TokenSavedResponse,
    ValidateResponse,
    VersionsResponse,
)

router = APIRouter(prefix="/providers", tags=["providers"])


def get_provider_runtime(request: Request) -> provider.ProviderRuntime:
    """One runtime per app, made by `create_app` (breaker state and status cache outlive requests);
    tests may set their own."""
    return request.app.state.provider_runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[provider.ProviderRuntime, Depends(get_provider_runtime)]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    api_token: str


class CostLimitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    amount: UsdAmount | None = None
    period: Period | None = None
    action: Action | None = None
    cancel_running_at_limit: bool | None = None
    cancel_on: Literal["accrued", "projected"] | None = None
    time_zone: TimeZoneName | None = None


class ReplicateSettingsRequest(BaseModel):
    """A partial update: only the keys sent change; null resets a key to its default."""

    model_config = ConfigDict(extra="forbid")
    model: ModelRef | None = None
    version: VersionId | None = None
    hardware: HardwareId | None = None
    public_url: PublicUrl | None = None
    webhook_allowed_ips: list[IpOrNetwork] | None = Field(None, max_length=MAX_LIST_ITEMS)
    trusted_proxies: list[IpOrNetwork] | None = Field(None, max_length=MAX_LIST_ITEMS)
    require_signature: bool | None = None
    cost_limit: CostLimitRequest | None = None
    http_timeout: float | None = None
    proxy_url: ProxyUrl | None = None
    data_consent: Consent | None = None
    # read-only parts of GET's answer; ignored, so GET -> PUT works
    derived: dict[str, Any] | None = None
    warnings: list[Any] | None = None


@router.get("", response_model=ProvidersResponse)
async def list_providers(
    session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> ProvidersResponse:
    return await provider.list_providers(session, settings, runtime)


@router.get("/replicate", response_model=ReplicateSettingsResponse)
async def get_replicate_settings(session: SessionDep, settings: SettingsDep) -> ReplicateSettingsResponse:
    return settings_answer(settings, await load_replicate_settings(session, settings))


@router.put("/replicate", response_model=ReplicateSettingsResponse)
async def put_replicate_settings(
    body: ReplicateSettingsRequest, session: SessionDep, settings: SettingsDep, request: Request
) -> ReplicateSettingsResponse:
    changes = body.model_dump(exclude_unset=True, exclude={"derived", "warnings"})
    updated = await update_replicate_settings(session, settings, changes)
    request.app.state.webhook_receiver.settings_changed()  # the receiver's short cache
    return settings_answer(settings, updated)


@router.get("/replicate/validate", response_model=ValidateResponse)
async def validate(session: SessionDep, settings: SettingsDep, runtime: RuntimeDep) -> ValidateResponse:
    return await provider.validate_token(session, settings, runtime)


@router.put("/replicate/token", response_model=TokenSavedResponse)
async def save_token(
    body: TokenRequest, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> TokenSavedResponse:
    return await provider.save_token(session, settings, runtime, body.api_token)


@router.delete("/replicate/token", response_model=TokenDeletedResponse)
async def delete_token(settings: SettingsDep, runtime: RuntimeDep) -> TokenDeletedResponse:
    return provider.delete_token(settings, runtime)


@router.get("/replicate/versions", response_model=VersionsResponse)
async def versions(session: SessionDep, settings: SettingsDep, runtime: RuntimeDep) -> VersionsResponse:
    return await provider.list_versions(session, settings, runtime)


@router.get("/replicate/billing", response_model=BillingResponse)
async def billing_summary(session: SessionDep, settings: SettingsDep, runtime: RuntimeDep) -> BillingResponse:
    return await billing.billing_summary(session, settings, runtime.now())


@router.post("/replicate/test-webhook", response_model=webhook_selftest.WebhookTestResult)
async def test_webhook(request: Request) -> webhook_selftest.WebhookTestResult:
    """Send a signed test event through the public URL to this server's receiver and report the way."""
    return await webhook_selftest.run_self_test(request.app.state.webhook_receiver)
