"""Replicate provider settings: the validated model, its storage (one JSON object in the store) and
partial updates. Others read it for webhooks (allowlist, trusted proxies, signature), costs
(`cost_limit`), datasets (`data_consent`) and submission (model, version, hardware, public URL)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import CostLimit
from simpletuner_cloud.domain.hardware import HardwareCatalogue, UnknownHardware
from simpletuner_cloud.errors import ValidationFailed
from simpletuner_cloud.replicate.factory import default_public_url
from simpletuner_cloud.replicate.proxies import mask_proxy_url, split_proxy_password, with_proxy_password
from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.provider_fields import (
    WEBHOOK_PATH,
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
    shown,
)
from simpletuner_cloud.services.provider_views import (
    CostLimitSettingsResponse,
    DerivedSettings,
    ReplicateSettingsResponse,
)
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.database import transaction_lock
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings

log = logging.getLogger(__name__)
PROVIDER = "replicate"
# The row names the proxy password's file in the secret store; the password itself is never in it.
PROXY_PASSWORD_KEY = "proxy_password_ref"  # noqa: S105 (a key name)
PROXY_PASSWORD_PREFIX = "replicate.proxy-password"  # noqa: S105 (a file name prefix)
MAX_LIST_ITEMS = 256


class CostLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    amount: UsdAmount | None = None
    period: Period = "monthly"
    action: Action = "warn"
    # Cancel running jobs at Replicate once the period's spend reaches the amount (accrued so far, or
    # projected to the end of the running jobs).
    cancel_running_at_limit: bool = False
    cancel_on: Literal["accrued", "projected"] = "accrued"
    time_zone: TimeZoneName | None = None  # periods follow this calendar; null: the machine's

    @_model_validator(mode="after")
    def _amount_when_enabled(self) -> CostLimitSettings:
        if self.enabled and self.amount is None:
            raise ValueError("an enabled cost limit needs an `amount` in USD")
        return self

    def domain(self) -> CostLimit:
        return CostLimit(
            amount=self.amount,
            period=self.period,
            action=self.action,
            enabled=self.enabled,
            cancel_running_at_limit=self.cancel_running_at_limit,
            cancel_on=self.cancel_on,
        )

    def answer(self) -> CostLimitSettingsResponse:
        """Answers keep money as JSON numbers (what the UI and scripts read); stored, it is exact."""
        return CostLimitSettingsResponse(
            enabled=self.enabled,
            amount=float(self.amount) if self.amount is not None else None,
            period=self.period,
            action=self.action,
            cancel_running_at_limit=self.cancel_running_at_limit,
            cancel_on=self.cancel_on,
            time_zone=self.time_zone,
        )


class ReplicateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelRef | None = None  # null: the trainer model of the chosen hardware profile
    version: VersionId | None = None  # a pin; null: the latest version
    hardware: HardwareId = "l40s"
    public_url: PublicUrl | None = None
    webhook_allowed_ips: list[IpOrNetwork] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    trusted_proxies: list[IpOrNetwork] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    require_signature: bool = True
    cost_limit: CostLimitSettings = Field(default_factory=CostLimitSettings)
    http_timeout: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    proxy_url: ProxyUrl | None = None
    data_consent: Consent = "ask"
    # What `load_replicate_settings` had to ignore in the saved settings (shown as warnings).
    _ignored: list[str] = PrivateAttr(default_factory=list)

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, value: str, info: ValidationInfo) -> str:
        """Saved as the profile's id, given as submit takes it: id, name or SKU, in any case."""
        catalogue = (info.context or {}).get("hardware") or load_hardware_catalogue()
        try:
            return str(catalogue.get(value).id)
        except UnknownHardware:
            raise ValueError(
                f"unknown hardware {shown(value)}; choose one of {', '.join(catalogue.ids)}"
            ) from None

    def trainer_model(self, catalogue: HardwareCatalogue) -> str:
        return self.model or catalogue.get(self.hardware).model

    def public_answer(self, derived: DerivedSettings) -> ReplicateSettingsResponse:
        """What the API shows: everything but the proxy password."""
        shown_settings = self.model_dump(mode="json")
        shown_settings["proxy_url"] = mask_proxy_url(self.proxy_url)
        shown_settings["cost_limit"] = self.cost_limit.answer()
        return ReplicateSettingsResponse(**shown_settings, derived=derived, warnings=list(self._ignored))


def effective_public_url(settings: Settings, replicate: ReplicateSettings) -> str | None:
    return replicate.public_url or default_public_url(settings)


def webhook_url(settings: Settings, replicate: ReplicateSettings) -> str | None:
    base = effective_public_url(settings, replicate)
    return f"{base}{WEBHOOK_PATH}" if base else None


def webhook_warning(settings: Settings, replicate: ReplicateSettings) -> str | None:
    """What the provider status says about webhooks: none flow without a public URL, and with
    signature checks off every delivery is only a hint."""
    warnings = []
    if not replicate.require_signature:
        warnings.append(
            "Webhook signature checks are off (require_signature: false): a delivery is only a hint, "
            "and the job is read from Replicate before anything changes. Turn them back on unless "
            "something in front of this server rewrites request bodies."
        )
    if not webhook_url(settings, replicate):
        warnings.append("No public URL: jobs are followed by polling until you set one.")
    return " ".join(warnings) or None


def settings_answer(settings: Settings, replicate: ReplicateSettings) -> ReplicateSettingsResponse:
    """GET's answer: the settings (proxy password masked) plus what follows from them."""
    derived = DerivedSettings(
        trainer_model=replicate.trainer_model(load_hardware_catalogue(settings)),
        webhook_url=webhook_url(settings, replicate),
    )
    return replicate.public_answer(derived)


def _context(settings: Settings) -> dict[str, Any]:
    return {"hardware": load_hardware_catalogue(settings)}


def _stored_input(stored: dict[str, Any], secrets: SecretStore) -> tuple[dict[str, Any], list[str]]:
    """The saved row as model input: the proxy password put back from the secret store."""
    values = dict(stored)
    reference = values.pop(PROXY_PASSWORD_KEY, None)
    notes: list[str] = []
    if reference is not None and isinstance(values.get("proxy_url"), str):
        password = secrets.get(reference)
        if password is None:
            notes.append(
                "The saved proxy password is missing from the secret store; the proxy is used without "
                "one until you save `proxy_url` again."
            )
        else:
            values["proxy_url"] = with_proxy_password(values["proxy_url"], password)
    return values, notes


async def load_replicate_settings(session: AsyncSession, settings: Settings) -> ReplicateSettings:
    """The saved settings. A saved value that no longer validates (hardware dropped from the price file,
    or a value saved before a check existed) falls back to its default, with a warning in the log and in
    the settings answer, instead of making every page that reads the settings fail."""
    stored, notes = _stored_input(await get_provider_settings(session, PROVIDER), SecretStore.of(settings))
    context = _context(settings)
    while True:
        try:
            loaded = ReplicateSettings.model_validate(stored, context=context)
        except ValidationError as exc:
            stored = _without_bad_values(stored, exc, notes)
            continue
        loaded._ignored = list(dict.fromkeys(notes))
        return loaded


def _without_bad_values(stored: dict[str, Any], exc: ValidationError, notes: list[str]) -> dict[str, Any]:
    """Drop each value an error names: a key of an object (`cost_limit.amount`) alone where it can be,
    else the whole top-level key; an error naming no field drops everything. Always shrinks `stored`."""
    kept = {k: (dict(v) if isinstance(v, dict) else v) for k, v in stored.items()}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        if loc and loc[0] not in kept:
            continue  # a second error in a value already dropped
        if not loc:
            log.warning("ignoring all saved Replicate settings: %s", sentence(error["msg"]))
            notes.append(f"The saved settings were ignored ({sentence(error['msg'])}).")
            return {}
        top = kept[loc[0]]
        if len(loc) > 1 and isinstance(top, dict) and loc[1] in top:
            del top[loc[1]]
        else:
            kept.pop(loc[0])
        field = ".".join(loc[:2])
        log.warning("ignoring the invalid saved Replicate setting %s: %s", field, sentence(error["msg"]))
        notes.append(
            f"The saved value of `{field}` was ignored ({sentence(error['msg'])}); the default is used "
            "until you save a new one."
        )
    return kept if kept != stored else {}


async def update_replicate_settings(
    session: AsyncSession, settings: Settings, changes: dict[str, Any]
) -> ReplicateSettings:
    """Merge `changes` (only the keys the caller sent; null resets a key to its default, and
    `cost_limit` merges key by key) into the saved settings, validate the whole, save, commit. The
    proxy password goes to the secret store under a new reference; the old one is deleted once the
    row naming the new one is committed. One save at a time (across servers): two saves of
    different keys each keep theirs, and the secret file a row names is never deleted under it."""
    await transaction_lock(session, f"provider_settings:{PROVIDER}")
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
    secrets = SecretStore.of(settings)
    old_reference = (await get_provider_settings(session, PROVIDER)).get(PROXY_PASSWORD_KEY)
    row = updated.model_dump(mode="json")
    row["proxy_url"], password = split_proxy_password(updated.proxy_url)
    new_reference: str | None = None
    if password is not None:
        if isinstance(old_reference, str) and secrets.get(old_reference) == password:
            new_reference = old_reference  # unchanged: keep the file
        else:
            new_reference = secrets.new_reference(PROXY_PASSWORD_PREFIX)
            secrets.put(new_reference, password)
        row[PROXY_PASSWORD_KEY] = new_reference
    await save_provider_settings(session, PROVIDER, row)
    await session.commit()
    if old_reference is not None and old_reference != new_reference:
        secrets.delete(old_reference)
    return updated


def sentence(message: str) -> str:
    """pydantic's message for a `ValueError` raised by our validators, without its prefix."""
    return message.removeprefix("Value error, ")


def settings_error(exc: ValidationError) -> ValidationFailed:
    fields = [
        {
            "field": ".".join(str(p) for p in error["loc"]) or "body",
            "message": sentence(error["msg"]),
        }
        for error in exc.errors()
    ]
    first = fields[0]
    return ValidationFailed(
        f"Invalid value for `{first['field']}`: {first['message']}",
        hint="Fix the named field and send the request again.",
        details={"fields": fields},
    )
