"""Submitting a training job (`POST /api/cloud/jobs/submit`). Everything that can be refused is
refused here, before a byte leaves: the dataset (preflight, size), data consent, the trainer's
argument list, the chosen trainer version's inputs, the destination and the cost limit. Then the job
is written durably, with its idempotency key and request hash, and the worker takes it from there
(package -> upload -> create the prediction), so the request answers at once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.datasets.preflight import Preflight, run_preflight
from simpletuner_cloud.domain.estimate import RunShape
from simpletuner_cloud.domain.hardware import HardwareProfile
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.budget_gate import check_budget, take_budget_lock
from simpletuner_cloud.services.consent import check_consent
from simpletuner_cloud.services.costs import estimate_job, estimate_view, shape_of
from simpletuner_cloud.services.datasets import load_config
from simpletuner_cloud.services.deliveries import record_deliveries
from simpletuner_cloud.services.delivery_plan import Delivery, DeliveryPlan, DeliveryRequest, plan_delivery
from simpletuner_cloud.services.hardware_catalogue import find_profile, load_hardware_catalogue
from simpletuner_cloud.services.job_secrets import delete_job_secrets, save_job_secrets
from simpletuner_cloud.services.job_views import EstimateView, SubmitResult, job_view
from simpletuner_cloud.services.provider_fields import WEBHOOK_PATH
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import (
    ReplicateSettings,
    load_replicate_settings,
    webhook_url,
)
from simpletuner_cloud.services.publishing import Publishing, load_publishing
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import new_job_id
from simpletuner_cloud.trainer.arguments import check_run_length, check_trainer_arguments
from simpletuner_cloud.trainer.inputs import JobSpec, dataset_inputs, run_options
from simpletuner_cloud.trainer.schema import check_trainer_inputs

EVENTS_FILTER = ["start", "output", "logs", "completed"]
PENDING_ARCHIVE_URL = "https://api.replicate.com/v1/files/pending"  # stands in for `images` when checking
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class SubmitJob:
    """A submission in our words; the route maps SimpleTuner's field names onto it."""

    config: str | None = None
    config_json: Any = None
    dataloader_json: Any = None
    merge_local_datasets: bool = False
    rename_to_captions: bool = False
    hardware: str | None = None
    delivery: Delivery | None = None
    hub_model_id: str | None = None
    hub_private: bool | None = None
    consent: bool = False
    webhook_url: str | None = None
    max_train_steps: int | None = None
    idempotency_key: str | None = None

    def request_hash(self) -> str:
        """What makes two submissions "the same": every field but the key itself."""
        body = {k: v for k, v in asdict(self).items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Checked:
    preflight: Preflight
    profile: HardwareProfile
    delivery: DeliveryPlan
    version: str
    warnings: list[str]
    shape: RunShape


async def submit_job(
    session: AsyncSession,
    settings: Settings,
    runtime: ProviderRuntime,
    request: SubmitJob,
    *,
    now: datetime | None = None,
) -> tuple[SubmitResult, bool]:
    """Returns (answer, created): created is False for a repeated idempotency key."""
    now = now or datetime.now(UTC)
    catalogue = load_hardware_catalogue(settings)
    request_hash = request.request_hash()
    key = _idempotency_key(request.idempotency_key)
    if key is not None:
        existing = await repo.get_job_by_idempotency_key(session, key)
        if existing is not None:
            return _repeat(existing, request_hash, catalogue, now), False

    replicate = await load_replicate_settings(session, settings)
    job_id = new_job_id()  # first: local delivery's keys and each job's S3 prefix are named after it
    publishing = await load_publishing(session, settings, runtime.environ)
    checked = await _check(settings, runtime, replicate, request, job_id, publishing)
    estimate = await estimate_job(session, catalogue, checked.profile, checked.shape)
    # The budget check and the insert share one transaction under the budget lock, begun afresh.
    await session.commit()
    await take_budget_lock(session)
    warning = (await check_budget(session, replicate, catalogue, estimate.cost_high, now)).warning
    warnings = [*checked.warnings, *([warning] if warning else [])]

    base = _job_webhook_base(request.webhook_url) or webhook_url(settings, replicate)
    spec = {
        "request": {k: v for k, v in asdict(request).items() if k != "idempotency_key"},
        "webhook": f"{base}{'&' if '?' in base else '?'}job={job_id}" if base else None,
        "webhook_events_filter": EVENTS_FILTER,
        "hub_model_id": request.hub_model_id,
        "destination_inputs": checked.delivery.inputs,
        "config_overrides": checked.delivery.config_overrides,
        "archive_bytes": checked.preflight.archive_size,
        "needs_upload": checked.preflight.needs_upload,
        "run_shape": checked.shape.key(),
        "estimate": estimate_view(estimate, checked.profile).model_dump(mode="json"),
        # Names only: the server that sends the create checks it can read each one (replicas).
        "secret_inputs": sorted(name for name, value in checked.delivery.secrets.items() if value),
    }
    save_job_secrets(settings, job_id, checked.delivery.secrets)
    job, created = await repo.create_job(
        session,
        job_id=job_id,
        config_name=checked.preflight.config.name or "inline",
        hardware=checked.profile.id,
        model=replicate.model or checked.profile.model,
        version=checked.version,
        spec=spec,
        idempotency_key=key,
        request_hash=request_hash,
        delivery=checked.delivery.delivery,
        warnings=warnings,
        estimated_cost_usd=estimate.cost_high,
        reserved_cost_usd=estimate.cost_high,
        at=now,
    )
    if not created:  # the same key won a race with this request
        delete_job_secrets(settings, job_id)
        await session.rollback()
        return _repeat(job, request_hash, catalogue, now), False
    await record_deliveries(session, job_id, checked.delivery)  # the ledger, in the job's transaction
    if warning:
        await repo.add_event(session, job_id, "cost_limit_warning", message=warning)
    await announce(session, job_id)
    await session.commit()
    view = job_view(job, catalogue, now)
    return SubmitResult(
        job=view,
        warnings=warnings,
        job_id=job.id,
        status=view.status,
        idempotent_hit=False,
        cost_limit_warning=warning,
        estimate=estimate_view(estimate, checked.profile),
    ), True


def _repeat(job: Any, request_hash: str, catalogue: Any, now: datetime) -> SubmitResult:
    if job.request_hash != request_hash:
        raise CloudError(
            "This idempotency key was already used for a different submission.",
            code="idempotency_conflict",
            hint="Use a new key for a new job, or send exactly the same body to get the first job back.",
            details={"job_id": job.id},
        )
    view = job_view(job, catalogue, now)
    return SubmitResult(
        job=view,
        warnings=list(job.warnings or []),
        job_id=job.id,
        status=view.status,
        idempotent_hit=True,
        cost_limit_warning=None,
        estimate=EstimateView.model_validate(job.spec["estimate"]) if job.spec.get("estimate") else None,
    )


def _idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise CloudError(
            "The idempotency key must be 1 to 255 printable characters.",
            code="validation_error",
            hint="A UUID is a good key: one per job you mean to create.",
        )
    return key


async def _check(
    settings: Settings,
    runtime: ProviderRuntime,
    replicate: ReplicateSettings,
    request: SubmitJob,
    job_id: str,
    publishing: Publishing,
) -> Checked:
    catalogue = load_hardware_catalogue(settings)
    profile = find_profile(catalogue, request.hardware or replicate.hardware)
    families = _extra_names(runtime.environ, "SIMPLETUNER_EXTRA_MODEL_FAMILIES")
    preflight = await anyio.to_thread.run_sync(lambda: _preflight(settings, request, families))
    check_consent(replicate.data_consent, request.consent, needs_upload=preflight.needs_upload)
    spec = JobSpec(
        preflight.config,
        preflight.plan,
        None,
        archive_url=PENDING_ARCHIVE_URL,
        max_train_steps=request.max_train_steps,
    )
    delivery = plan_delivery(
        _delivery_request(request, job_id, publishing, settings),
        preflight.config,
        runtime.environ,
    )
    spec = replace(spec, config=_with_overrides(preflight.config, delivery.config_overrides))
    # What the trainer runs with: config_json with the max_train_steps input over it.
    check_trainer_arguments(
        run_options(spec), _extra_names(runtime.environ, "SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS")
    )
    check_run_length(run_options(spec))
    async with runtime.client(settings, replicate) as client:
        model = replicate.model or profile.model
        if replicate.version:
            version = await client.get_version(model, replicate.version)
        else:
            version = (await client.get_model(model)).get("latest_version") or {}
    if not version.get("id"):
        raise CloudError(
            f"Replicate lists no version of {model}.",
            code="provider_error",
            hint="Pin a version in Cloud -> Settings, or check the model name.",
        )
    check_trainer_inputs(
        {**dataset_inputs(spec), **delivery.checked_inputs()}, version.get("openapi_schema") or {}
    )
    return Checked(
        preflight,
        profile,
        delivery,
        str(version["id"]),
        [*preflight.plan.warnings, *delivery.warnings],
        priced_shape(preflight, request, delivery),
    )


def priced_shape(preflight: Preflight, request: SubmitJob, delivery: DeliveryPlan | None) -> RunShape:
    """The run that the estimate and the submit's reservation both price, so they cannot differ: the
    config with the delivery plan's changes (S3 and local rewrite the checkpoint and validation
    intervals) and the max_train_steps input, as the trainer runs it."""
    overrides = delivery.config_overrides if delivery is not None else {}
    spec = JobSpec(
        _with_overrides(preflight.config, overrides),
        preflight.plan,
        None,
        archive_url=PENDING_ARCHIVE_URL,
        max_train_steps=request.max_train_steps,
    )
    return shape_of(preflight, run_options(spec))


def _with_overrides(config: TrainingConfig, overrides: dict[str, Any]) -> TrainingConfig:
    return replace(config, options={**config.options, **overrides}) if overrides else config


def _preflight(settings: Settings, request: SubmitJob, model_families: list[str] | None = None) -> Preflight:
    config = load_config(settings, request.config, request.config_json, request.dataloader_json)
    return run_preflight(
        config,
        merge_local=request.merge_local_datasets,
        rename_to_captions=request.rename_to_captions,
        model_families=model_families,
    )


def _job_webhook_base(url: str | None) -> str | None:
    """SimpleTuner's `webhook_url`: a base URL gets our webhook path, a full URL is kept as given."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.path in ("", "/"):
        parts = parts._replace(path=WEBHOOK_PATH)
    return urlunsplit(parts)


def _delivery_request(
    request: SubmitJob, job_id: str, publishing: Publishing, settings: Settings
) -> DeliveryRequest:
    """What the delivery plan reads of a submit (the estimate plans with a stand-in job id)."""
    return DeliveryRequest(
        request.delivery,
        request.hub_model_id,
        hub_private=request.hub_private,
        max_train_steps=request.max_train_steps,
        job_id=job_id,
        publishing=publishing,
        settings=settings,
    )


def _extra_names(environ: Mapping[str, str] | None, variable: str) -> list[str]:
    """A comma-separated list of names a newer trainer knows (arguments, model families)."""
    env = os.environ if environ is None else environ
    return [name for name in env.get(variable, "").split(",") if name.strip()]


async def estimate_submission(
    session: AsyncSession,
    settings: Settings,
    request: SubmitJob,
    environ: Mapping[str, str] | None = None,
) -> EstimateView:
    """`POST /api/cloud/cost-estimate`: the same reading of the config and dataset as a submit, the same
    delivery plan, and the estimate it would carry; nothing is checked at Replicate and nothing is
    written. A destination the submit would refuse leaves the config as it is (no job, no reservation)."""
    catalogue = load_hardware_catalogue(settings)
    replicate = await load_replicate_settings(session, settings)
    profile = find_profile(catalogue, request.hardware or replicate.hardware)
    preflight = await anyio.to_thread.run_sync(lambda: _preflight(settings, request))
    publishing = await load_publishing(session, settings, environ)
    delivery: DeliveryPlan | None
    try:
        delivery = plan_delivery(
            _delivery_request(request, "job_estimate", publishing, settings),
            preflight.config,
            environ,
        )
    except CloudError:
        delivery = None
    shape = priced_shape(preflight, request, delivery)
    return estimate_view(await estimate_job(session, catalogue, profile, shape), profile)
