"""Publishing settings (`GET/PUT /api/cloud/publishing`): where trained models go when a job does not
say. The Hub (Push to Hub, repo id, private or public, a token from `HF_TOKEN` or saved), an external
S3 bucket (endpoint, region, bucket, prefix; keys saved) and local download into `cloud_outputs/`
(needs the public URL of the provider settings). One JSON object in the settings store; the token and
keys live in the secret store, named by reference, and are never returned."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.hugging_face import token_format_error, token_format_problem
from simpletuner_cloud.services.provider_fields import shown, url_parts
from simpletuner_cloud.services.provider_settings import (
    effective_public_url,
    load_replicate_settings,
    settings_error,
)
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.database import transaction_lock
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings

ROW = "publishing"  # the key in the provider settings table
STORAGE_PATH = "/api/cloud/storage"
HUB_ENDPOINT = "https://huggingface.co"
TUNNEL_HINT = (
    "Start a tunnel (`ngrok http 8080` or `cloudflared tunnel --url http://localhost:8080`) and save its "
    "https URL as the public URL (Cloud -> Settings, or PUT /api/cloud/providers/replicate with "
    '{"public_url": "https://..."}).'
)
GIB = 1024**3
# The secrets a PUT may send, the row key naming each one's file, and its file name prefix.
SECRET_FIELDS = {
    ("hub", "token"): ("hf_token_ref", "publishing.hf-token"),
    ("s3", "access_key"): ("s3_access_key_ref", "publishing.s3-access-key"),
    ("s3", "secret_key"): ("s3_secret_key_ref", "publishing.s3-secret-key"),
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]{2,40}$")


def hub_repo_id(value: str) -> str:
    text = value.strip()
    if not _REPO_ID.match(text) or ".." in text:
        raise ValueError(f"must be `username/repo-name` (for example `username/my-lora`), not {shown(text)}")
    return text


def bucket_name(value: str) -> str:
    text = value.strip()
    if not _BUCKET.match(text) or ".." in text:
        raise ValueError(
            "must be an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens), "
            f"not {shown(text)}"
        )
    return text


def key_prefix(value: str) -> str:
    text = value.strip().strip("/")
    parts = text.split("/") if text else []
    if len(text) > 512 or any(part in ("", ".", "..") for part in parts) or "\\" in text:
        raise ValueError(f"must be a plain key prefix such as `simpletuner/loras`, not {shown(value)}")
    if any(not c.isprintable() for c in text):
        raise ValueError("must not contain control characters")
    return text


def endpoint_url(value: str) -> str:
    parts = url_parts(
        value, ("http", "https"), "an http(s) URL such as https://s3.us-west-002.backblazeb2.com"
    )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must have no user name, password, query or fragment")
    return value.strip().rstrip("/")


def region_name(value: str) -> str:
    text = value.strip()
    if not _REGION.match(text):
        raise ValueError(f"must be a region name such as `us-east-1`, not {shown(text)}")
    return text


RepoId = Annotated[str, AfterValidator(hub_repo_id)]
Bucket = Annotated[str, AfterValidator(bucket_name)]
Prefix = Annotated[str, AfterValidator(key_prefix)]
Endpoint = Annotated[str, AfterValidator(endpoint_url)]
Region = Annotated[str, AfterValidator(region_name)]
Delivery = Literal["hub", "s3", "local", "none"]


class HubPublishing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    push_to_hub: bool = False  # the seed's "Push to Hub": every job also pushes to `hub_model_id`
    hub_model_id: RepoId | None = None
    private: bool = True  # the trainer's `model_card_private`: new repos are created private


class S3Publishing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint_url: Endpoint | None = None  # None: AWS S3 itself
    region: Region = "us-east-1"
    bucket: Bucket | None = None
    prefix: Prefix = "simpletuner"  # each job writes under <prefix>/<job id>/
    public_base_url: Endpoint | None = None  # only shapes the URL the trainer returns


class LocalPublishing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # One object through the ingress (a full fine-tune's checkpoint is tens of GiB; a LoRA a few MiB).
    max_object_bytes: int = Field(default=20 * GIB, ge=1024, le=1024 * GIB)


class PublishingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_delivery: Delivery | None = None  # what a job without `delivery` uses (Push to Hub: the Hub)
    hub: HubPublishing = Field(default_factory=HubPublishing)
    s3: S3Publishing = Field(default_factory=S3Publishing)
    local: LocalPublishing = Field(default_factory=LocalPublishing)


@dataclass(frozen=True)
class Publishing:
    """The settings with their secrets resolved (server side only, never in an answer)."""

    settings: PublishingSettings
    hf_token: str | None
    hf_token_source: Literal["env", "saved"] | None
    hf_token_saved: bool
    s3_access_key: str | None
    s3_secret_key: str | None
    public_url: str | None  # the provider settings' public URL (sandbox mode: loopback)
    hub_endpoint: str

    @property
    def storage_endpoint(self) -> str | None:
        return f"{self.public_url}{STORAGE_PATH}" if self.public_url else None


def hub_endpoint(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """`HF_ENDPOINT` when set; in sandbox mode the sandbox's own Hub routes; else huggingface.co."""
    env = os.environ if environ is None else environ
    configured = (env.get("HF_ENDPOINT") or "").strip().rstrip("/")
    if configured:
        return configured
    if settings.sandbox:
        return f"http://127.0.0.1:{settings.port}/sandbox/hub"
    return HUB_ENDPOINT


async def load_publishing(
    session: AsyncSession, settings: Settings, environ: Mapping[str, str] | None = None
) -> Publishing:
    env = os.environ if environ is None else environ
    row = await get_provider_settings(session, ROW)
    values = {k: v for k, v in row.items() if not k.endswith("_ref")}
    try:
        parsed = PublishingSettings.model_validate(values)
    except ValidationError:
        parsed = PublishingSettings()  # a row saved by hand that no longer validates: the defaults
    store = SecretStore.of(settings)
    from_env = (env.get("HF_TOKEN") or "").strip() or None
    saved_token = store.get(row.get("hf_token_ref"))
    replicate = await load_replicate_settings(session, settings)
    return Publishing(
        settings=parsed,
        hf_token=from_env or saved_token,
        hf_token_source="env" if from_env else ("saved" if saved_token else None),
        hf_token_saved=saved_token is not None,
        s3_access_key=store.get(row.get("s3_access_key_ref")),
        s3_secret_key=store.get(row.get("s3_secret_key_ref")),
        public_url=effective_public_url(settings, replicate),
        hub_endpoint=hub_endpoint(settings, env),
    )


async def update_publishing(session: AsyncSession, settings: Settings, changes: dict[str, Any]) -> None:
    """Merge the sent keys into the saved settings (objects key by key; null resets a key to its
    default, or deletes a saved secret), validate the whole, save the secrets under new references,
    commit, then delete the files the row no longer names. One save at a time (across servers), so
    two saves of different keys each keep theirs."""
    await transaction_lock(session, f"provider_settings:{ROW}")
    row = await get_provider_settings(session, ROW)
    merged: dict[str, Any] = {k: v for k, v in row.items() if not k.endswith("_ref")}
    references = {k: v for k, v in row.items() if k.endswith("_ref")}
    new_secrets: dict[str, str | None] = {}
    for key, value in changes.items():
        if isinstance(value, dict) and key in ("hub", "s3", "local"):
            section = dict(merged.get(key) or {})
            for name, item in value.items():
                if (key, name) in SECRET_FIELDS:
                    new_secrets[SECRET_FIELDS[(key, name)][0]] = item
                elif item is None:
                    section.pop(name, None)
                else:
                    section[name] = item
            merged[key] = section
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        updated = PublishingSettings.model_validate(merged)
    except ValidationError as exc:
        raise settings_error(exc) from None
    hub_token = (new_secrets.get("hf_token_ref") or "").strip()
    problem = token_format_problem(hub_token) if hub_token else None
    if problem is not None:  # refused here, or every later Hub call would fail with it
        raise token_format_error(problem)
    store = SecretStore.of(settings)
    saved = updated.model_dump(mode="json")
    stale: list[str] = []
    for reference_key, prefix in SECRET_FIELDS.values():
        old = references.get(reference_key)
        if reference_key not in new_secrets:
            if old:
                saved[reference_key] = old
            continue
        value = (new_secrets[reference_key] or "").strip()
        if old:
            stale.append(str(old))
        if value:
            reference = store.new_reference(prefix)
            store.put(reference, value)
            saved[reference_key] = reference
    await save_provider_settings(session, ROW, saved)
    await session.commit()
    for reference in stale:
        store.delete(reference)


def local_status(publishing: Publishing) -> tuple[bool, str]:
    if publishing.public_url:
        return True, (
            f"The trainer uploads to {publishing.storage_endpoint} with per-job keys; files land in "
            "cloud_outputs/<job id>/."
        )
    return False, "Local download needs a public URL the trainer can reach. " + TUNNEL_HINT


class TokenView(BaseModel):
    source: Literal["env", "saved"] | None = Field(description="HF_TOKEN wins over a saved token.")
    saved: bool = Field(description="A token is saved (HF_TOKEN, when set, is used instead).")
    endpoint: str = Field(description="Where the token is checked and Hub files are read back.")


class SecretView(BaseModel):
    saved: bool


class HubView(HubPublishing):
    token: TokenView


class S3View(S3Publishing):
    access_key: SecretView
    secret_key: SecretView


class LocalView(LocalPublishing):
    available: bool
    message: str
    public_url: str | None
    endpoint_url: str | None
    folder: str


class PublishingView(BaseModel):
    default_delivery: Delivery | None
    hub: HubView
    s3: S3View
    local: LocalView
    warnings: list[str]


def publishing_view(publishing: Publishing, settings: Settings) -> PublishingView:
    """What GET shows: the settings, where each secret comes from (never the value), and what local
    download would use."""
    saved = publishing.settings
    available, message = local_status(publishing)
    warnings = []
    if saved.hub.push_to_hub and not saved.hub.hub_model_id:
        warnings.append("Push to Hub is on but no hub_model_id is set: jobs must name one.")
    if saved.hub.push_to_hub and not publishing.hf_token:
        warnings.append('Push to Hub needs a Hugging Face token: export HF_TOKEN="hf_..." or save one here.')
    if saved.default_delivery == "s3" and not saved.s3.bucket:
        warnings.append("The default delivery is S3 but no bucket is set.")
    if saved.default_delivery == "local" and not available:
        warnings.append(message)
    return PublishingView(
        default_delivery=saved.default_delivery,
        hub=HubView(
            **saved.hub.model_dump(),
            token=TokenView(
                source=publishing.hf_token_source,
                saved=publishing.hf_token_saved,
                endpoint=publishing.hub_endpoint,
            ),
        ),
        s3=S3View(
            **saved.s3.model_dump(),
            access_key=SecretView(saved=publishing.s3_access_key is not None),
            secret_key=SecretView(saved=publishing.s3_secret_key is not None),
        ),
        local=LocalView(
            **saved.local.model_dump(),
            available=available,
            message=message,
            public_url=publishing.public_url,
            endpoint_url=publishing.storage_endpoint,
            folder=str(settings.outputs_dir),
        ),
        warnings=warnings,
    )
