"""Replicate provider settings: the validated model, its storage (one JSON object in the store) and
partial updates. Others read it for webhooks (allowlist, trusted proxies, signature), costs
(`cost_limit`), datasets (`data_consent`) and submission (model, version, hardware, public URL)."""

from __future__ import annotations

import ipaddress
import logging
import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import CostLimit
from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.errors import ValidationFailed
from simpletuner_cloud.replicate.factory import default_public_url
from simpletuner_cloud.replicate.proxies import mask_proxy_url
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings

log = logging.getLogger(__name__)
PROVIDER = "replicate"
WEBHOOK_PATH = "/api/webhooks/replicate"
_MODEL_REF = re.compile(r"^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*$", re.IGNORECASE)
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")


def ip_or_network(value: str) -> str:
    """An IPv4/IPv6 address or CIDR, normalised (`34.82.1.2/16` -> `34.82.0.0/16`)."""
    text = value.strip()
    try:
        return (
            str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.ip_address(text))
        )
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4/IPv6 address or CIDR range") from None


def public_base_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://training.example.com")
    if parts.username or parts.password:  # it would be shown in answers and sent with every job
        raise ValueError("must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"must have no path or query: the webhook path {WEBHOOK_PATH} is added automatically"
        )
    return f"{parts.scheme}://{parts.netloc}"


def proxy_address(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ValueError("must be an http://, https:// or socks5:// proxy URL")
    return value.strip()


def model_ref(value: str) -> str:
    if not _MODEL_REF.match(value.strip()):
        raise ValueError("must be owner/name, e.g. simpletuner/advanced-trainer")
    return value.strip()


def version_id(value: str) -> str:
    if not _VERSION_ID.match(value.strip().lower()):
        raise ValueError("must be a 64-character hex version id (or null to use the latest)")
    return value.strip().lower()


IpOrNetwork = Annotated[str, AfterValidator(ip_or_network)]
PublicUrl = Annotated[str, AfterValidator(public_base_url)]
ProxyUrl = Annotated[str, AfterValidator(proxy_address)]
ModelRef = Annotated[str, AfterValidator(model_ref)]
VersionId = Annotated[str, AfterValidator(version_id)]
Period = Literal["daily", "weekly", "monthly"]
Action = Literal["warn", "block"]
Consent = Literal["ask", "allow", "deny"]


class CostLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    amount: float | None = Field(default=None, gt=0, description="USD per period")
    period: Period = "monthly"
    action: Action = "warn"

    @_model_validator(mode="after")
    def _amount_when_enabled(self) -> CostLimitSettings:
        if self.enabled and self.amount is None:
            raise ValueError("an enabled cost limit needs an `amount` in USD")
        return self

    def domain(self) -> CostLimit:
        amount = Decimal(str(self.amount)) if self.amount is not None else None
        return CostLimit(amount=amount, period=self.period, action=self.action, enabled=self.enabled)


class ReplicateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelRef | None = None  # null: the trainer model of the chosen hardware profile
    version: VersionId | None = None  # a pin; null: the latest version
    hardware: str = "l40s"
    public_url: PublicUrl | None = None
    webhook_allowed_ips: list[IpOrNetwork] = Field(default_factory=list)
    trusted_proxies: list[IpOrNetwork] = Field(default_factory=list)
    require_signature: bool = True
    cost_limit: CostLimitSettings = Field(default_factory=CostLimitSettings)
    http_timeout: float = Field(default=30.0, gt=0, le=600)
    proxy_url: ProxyUrl | None = None
    data_consent: Consent = "ask"

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, value: str, info: ValidationInfo) -> str:
        ids = (info.context or {}).get("hardware_ids") or load_hardware_catalogue().ids
        if value not in ids:
            raise ValueError(f"unknown hardware {value!r}; choose one of {', '.join(ids)}")
        return value

    def trainer_model(self, catalogue: HardwareCatalogue) -> str:
        return self.model or catalogue.get(self.hardware).model

    def public_answer(self) -> dict[str, Any]:
        """What the API shows: everything but the proxy password."""
        shown = self.model_dump(mode="json")
        shown["proxy_url"] = mask_proxy_url(self.proxy_url)
        return shown


def effective_public_url(settings: Settings, replicate: ReplicateSettings) -> str | None:
    return replicate.public_url or default_public_url(settings)


def webhook_url(settings: Settings, replicate: ReplicateSettings) -> str | None:
    base = effective_public_url(settings, replicate)
    return f"{base}{WEBHOOK_PATH}" if base else None


def settings_answer(settings: Settings, replicate: ReplicateSettings) -> dict[str, Any]:
    """GET's answer: the settings (proxy password masked) plus what follows from them."""
    return {
        **replicate.public_answer(),
        "derived": {
            "trainer_model": replicate.trainer_model(load_hardware_catalogue(settings)),
            "webhook_url": webhook_url(settings, replicate),
        },
    }


def _context(settings: Settings) -> dict[str, Any]:
    return {"hardware_ids": load_hardware_catalogue(settings).ids}


async def load_replicate_settings(session: AsyncSession, settings: Settings) -> ReplicateSettings:
    """The saved settings; a value that no longer validates (say, hardware dropped from the price
    file) falls back to its default instead of making every page fail."""
    stored = await get_provider_settings(session, PROVIDER)
    context = _context(settings)
    for _ in range(len(stored) + 1):
        try:
            return ReplicateSettings.model_validate(stored, context=context)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            log.warning("ignoring invalid saved Replicate settings: %s", ", ".join(sorted(bad)))
            stored = {k: v for k, v in stored.items() if k not in bad}
    return ReplicateSettings()


async def update_replicate_settings(
    session: AsyncSession, settings: Settings, changes: dict[str, Any]
) -> ReplicateSettings:
    """Merge `changes` (only the keys the caller sent; null resets a key to its default, and
    `cost_limit` merges key by key) into the saved settings, validate the whole, save, commit."""
    current = await load_replicate_settings(session, settings)
    merged = current.model_dump(mode="json")
    for key, value in changes.items():
        if key == "proxy_url" and value is not None and value == mask_proxy_url(current.proxy_url):
            continue  # the masked value shown by GET, sent back unchanged
        if value is None:
            merged.pop(key, None)
        elif key == "cost_limit" and isinstance(value, dict):
            merged["cost_limit"] = {**merged.get("cost_limit", {}), **value}
        else:
            merged[key] = value
    try:
        updated = ReplicateSettings.model_validate(merged, context=_context(settings))
    except ValidationError as exc:
        raise settings_error(exc) from None
    await save_provider_settings(session, PROVIDER, updated.model_dump(mode="json"))
    await session.commit()
    return updated


def settings_error(exc: ValidationError) -> ValidationFailed:
    fields = [
        {
            "field": ".".join(str(p) for p in error["loc"]) or "body",
            "message": error["msg"].removeprefix("Value error, "),
        }
        for error in exc.errors()
    ]
    first = fields[0]
    return ValidationFailed(
        f"Invalid value for `{first['field']}`: {first['message']}",
        hint="Fix the named field and send the request again.",
        details={"fields": fields},
    )
