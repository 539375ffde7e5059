"""Answer shapes of the provider use cases (`provider.py`): the services build them and the routes
use them as response models, so /docs shows them and an answer can never grow a field (a token,
say) that nobody declared."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AccountResponse(BaseModel):
    username: str
    name: str | None
    type: str


class ProviderEntry(BaseModel):
    id: str
    name: str
    configured: bool
    token_source: str | None
    token_check: str | None  # valid | invalid | unknown (Replicate unreachable); null without a token
    ready: bool
    sandbox: bool
    banner: str | None
    webhook_url: str | None
    hardware: str
    model: str
    not_ready_reason: str | None
    warning: str | None


class ProvidersResponse(BaseModel):
    providers: list[ProviderEntry]


class ValidateResponse(BaseModel):
    valid: bool
    account: AccountResponse
    token_source: str | None
    token: str | None  # masked: r8_...abcd
    sandbox: bool


class TokenSavedResponse(BaseModel):
    saved: bool
    token: str  # masked
    account: AccountResponse
    token_source: str | None  # the token now in use: env wins over saved
    note: str | None


class TokenDeletedResponse(BaseModel):
    deleted: bool
    token_source: str | None
    token: str | None  # masked
    note: str | None


class VersionEntry(BaseModel):
    id: str
    created_at: str | None
    cog_version: str | None
    selected: bool


class VersionsResponse(BaseModel):
    model: str
    pinned: str | None
    pinned_exists: bool | None  # false: the pin is not a version of `model`; null: nothing pinned
    selected: str | None  # the version jobs use: the pin, else the latest; null if the pin is missing
    warning: str | None
    versions: list[VersionEntry]


class SystemStatusResponse(BaseModel):
    indicator: str  # none | minor | major | critical | unknown
    description: str
    reason: str | None
    components: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    source: str
    checked_at: str


class CostLimitSettingsResponse(BaseModel):
    enabled: bool
    amount: float | None
    period: str
    action: str
    cancel_running_at_limit: bool
    cancel_on: str  # accrued | projected
    time_zone: str | None  # null: the machine's


class DerivedSettings(BaseModel):
    trainer_model: str
    webhook_url: str | None


class ReplicateSettingsResponse(BaseModel):
    """The settings (proxy password masked) and, read-only, what follows from them. Plain types:
    answers are not re-validated against the current hardware catalogue."""

    model: str | None
    version: str | None
    hardware: str
    public_url: str | None
    webhook_allowed_ips: list[str]
    trusted_proxies: list[str]
    require_signature: bool
    cost_limit: CostLimitSettingsResponse
    http_timeout: float
    proxy_url: str | None  # the password, if any, masked: http://user:***@proxy:3128
    data_consent: str
    derived: DerivedSettings
    warnings: list[str]  # saved values that no longer validate and were ignored
