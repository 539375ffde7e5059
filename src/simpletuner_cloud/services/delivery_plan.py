"""Where a job's trained model goes, decided at submit: the trainer's destination inputs (never a
secret in `config_json`: secrets travel only as Secret inputs), the secrets the job needs until it
ends (kept in the secret store), changes the destination needs in the config, the deliveries the
ledger tracks, and warnings. Refuses a job whose weights would be lost without the user saying so.

S3 and local delivery: the real trainer uploads its output folder only after an in-training
validation run and never publishes the final save (trainer-contract 2.4), so the config must have a
validation prompt, checkpoint and validation intervals that divide the step count (the last
checkpoint is then published), and a small `checkpoints_total_limit` (each upload re-sends every
checkpoint kept). Intervals and the limit are fixed here; a missing prompt or step count is refused."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.publishing import TUNNEL_HINT, Publishing, hub_repo_id
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.storage.keys import credentials_for

Delivery = Literal["hub", "s3", "local", "none"]
Destination = Literal["hub", "s3", "local"]
NONE_WARNING = 'Delivery "none": the trained weights stay on Replicate\'s machine and are lost when it stops.'
LOCAL_BUCKET = "cloud-outputs"
LOCAL_REGION = "us-east-1"
SMALL_CHECKPOINT_LIMIT = 2


@dataclass(frozen=True)
class DeliveryRequest:
    delivery: Delivery | None
    hub_model_id: str | None
    hub_private: bool | None = None
    max_train_steps: int | None = None
    job_id: str | None = None  # local delivery's keys and every job's own S3 prefix are named after it
    publishing: Publishing | None = None  # None: HF_TOKEN from the environment, nothing else set
    settings: Settings | None = None


@dataclass(frozen=True)
class PlannedDelivery:
    destination: Destination
    target: dict[str, Any]  # what the delivery task checks: repo id, bucket and prefix, folder


@dataclass(frozen=True)
class DeliveryPlan:
    delivery: Delivery
    inputs: dict[str, Any] = field(default_factory=dict)  # non-secret trainer inputs of the destination
    secrets: dict[str, str] = field(default_factory=dict)  # Secret inputs (hf_token, s3 keys)
    config_overrides: dict[str, Any] = field(default_factory=dict)  # applied to config_json
    warnings: list[str] = field(default_factory=list)
    deliveries: list[PlannedDelivery] = field(default_factory=list)

    def checked_inputs(self) -> dict[str, Any]:
        """The input names the trainer version must declare (secret values stand in as "x")."""
        return {**self.inputs, **dict.fromkeys(self.secrets, "x")}


def plan_delivery(
    request: DeliveryRequest, config: TrainingConfig, environ: Mapping[str, str] | None = None
) -> DeliveryPlan:
    env = os.environ if environ is None else environ
    publishing = request.publishing
    hf_token = publishing.hf_token if publishing else (env.get("HF_TOKEN") or "").strip() or None
    # Sent whenever it is set: gated base models (FLUX.1-dev) need it even without a Hub push.
    secrets = {"hf_token": hf_token} if hf_token else {}
    hub = publishing.settings.hub if publishing else None
    delivery = request.delivery or _default_delivery(request, publishing)
    if delivery == "none":
        return DeliveryPlan("none", {}, secrets, warnings=[NONE_WARNING])
    plan = _Plan(secrets=secrets)
    if delivery in ("s3", "local"):
        if delivery == "s3":
            _plan_s3(plan, request, publishing)
        else:
            _plan_local(plan, request, publishing)
        _plan_validation(plan, request, config)
    # The Hub as the destination, or beside S3/local (Push to Hub on, or a hub_model_id sent):
    # S3 never receives the final save, the Hub does.
    also_hub = request.hub_model_id or (hub.hub_model_id if hub and hub.push_to_hub else None)
    if delivery == "hub" or also_hub:
        _plan_hub(
            plan, request, publishing, hf_token, request.hub_model_id or (hub.hub_model_id if hub else None)
        )
    return DeliveryPlan(delivery, plan.inputs, plan.secrets, plan.overrides, plan.warnings, plan.deliveries)


@dataclass
class _Plan:
    secrets: dict[str, str]
    inputs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    deliveries: list[PlannedDelivery] = field(default_factory=list)


def _default_delivery(request: DeliveryRequest, publishing: Publishing | None) -> Delivery:
    if request.hub_model_id:
        return "hub"
    if publishing is not None:
        saved = publishing.settings
        if saved.default_delivery:
            return saved.default_delivery
        if saved.hub.push_to_hub and saved.hub.hub_model_id:
            return "hub"
    raise CloudError(
        "The job has no destination for the trained model; the trainer would discard the weights.",
        code="delivery_required",
        hint='Choose where the weights go: "delivery": "hub" with a hub_model_id (and HF_TOKEN set), "s3" '
        '(a bucket in Publishing), "local" (downloaded into ~/.simpletuner/cloud_outputs/; needs a public '
        'URL), or "none" to train without keeping them. Publishing can set a default.',
    )


def _plan_hub(
    plan: _Plan, request: DeliveryRequest, publishing: Publishing | None, token: str | None, repo: str | None
) -> None:
    try:
        repo_id = hub_repo_id(repo or "")
    except ValueError:
        raise CloudError(
            "Push to Hub needs hub_model_id as `username/repo-name`.",
            code="validation_error",
            hint="For example `username/my-lora` (or set it in Publishing).",
        ) from None
    if not token:
        raise CloudError(
            "Push to Hub needs a Hugging Face token, and HF_TOKEN is not set.",
            code="hf_token_missing",
            hint='Export it: export HF_TOKEN="hf_..." and restart simpletuner server (or save one in '
            "Publishing).",
        )
    private = request.hub_private
    if private is None:
        private = publishing.settings.hub.private if publishing else None
    plan.inputs["hub_model_id"] = repo_id
    if private is not None:
        plan.overrides["model_card_private"] = private  # the trainer creates the repo with this
    target: dict[str, Any] = {"repo_id": repo_id, "private": private}
    if publishing is not None:
        target["endpoint"] = publishing.hub_endpoint
    plan.deliveries.append(PlannedDelivery("hub", target))


def _plan_s3(plan: _Plan, request: DeliveryRequest, publishing: Publishing | None) -> None:
    s3 = publishing.settings.s3 if publishing else None
    if s3 is None or not s3.bucket:
        raise CloudError(
            "S3 delivery needs a bucket, and none is configured.",
            code="s3_not_configured",
            hint='Set one in Publishing: PUT /api/cloud/publishing with {"s3": {"bucket": "...", "region": '
            '"...", "endpoint_url": "...", "access_key": "...", "secret_key": "..."}}, then test it.',
        )
    assert publishing is not None
    if not publishing.s3_access_key or not publishing.s3_secret_key:
        raise CloudError(
            "S3 delivery needs the bucket's access key and secret key, and they are not saved.",
            code="s3_keys_missing",
            hint='Save them: PUT /api/cloud/publishing with {"s3": {"access_key": "...", "secret_key": '
            '"..."}}. The trainer gets them as Secret inputs; they never go into config_json.',
        )
    base_path = "/".join(part for part in (s3.prefix, request.job_id) if part)
    plan.inputs.update(s3_bucket=s3.bucket, s3_region=s3.region, s3_base_path=base_path)
    if s3.endpoint_url:
        plan.inputs["s3_endpoint_url"] = s3.endpoint_url
    if s3.public_base_url:
        plan.inputs["s3_public_base_url"] = s3.public_base_url
    plan.secrets.update(s3_access_key=publishing.s3_access_key, s3_secret_key=publishing.s3_secret_key)
    target = {
        "bucket": s3.bucket,
        "region": s3.region,
        "prefix": base_path,
        "endpoint_url": s3.endpoint_url,
        "public_base_url": s3.public_base_url,
    }
    plan.deliveries.append(PlannedDelivery("s3", target))


def _plan_local(plan: _Plan, request: DeliveryRequest, publishing: Publishing | None) -> None:
    public_url = publishing.public_url if publishing else None
    if not public_url:
        raise CloudError(
            "Local download needs a public URL the trainer on Replicate can upload to, and none is set.",
            code="public_url_missing",
            hint=TUNNEL_HINT,
        )
    settings = request.settings
    if settings is None or request.job_id is None:
        raise RuntimeError("local delivery is planned with the job's id and the settings")
    trainer_is_local = settings.sandbox or _loopback(settings.replicate_base_url)  # the sandbox's trainer
    if _loopback(public_url) and not trainer_is_local:
        raise CloudError(
            f"The public URL {public_url} reaches this machine only; Replicate's trainer cannot upload "
            "to it.",
            code="public_url_missing",
            hint=TUNNEL_HINT,
        )
    access_key, secret_key = credentials_for(SecretStore.of(settings), request.job_id)
    plan.inputs.update(
        s3_bucket=LOCAL_BUCKET,
        s3_region=LOCAL_REGION,
        s3_endpoint_url=f"{public_url}/api/cloud/storage",
        s3_base_path=request.job_id,
    )
    plan.secrets.update(s3_access_key=access_key, s3_secret_key=secret_key)
    folder = settings.outputs_dir / request.job_id
    plan.deliveries.append(
        PlannedDelivery("local", {"bucket": LOCAL_BUCKET, "prefix": request.job_id, "folder": str(folder)})
    )


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plan_validation(plan: _Plan, request: DeliveryRequest, config: TrainingConfig) -> None:
    """What S3 publishing needs from the config (see the module's note); warns about each change."""
    options = config.options
    where = "S3" if plan.deliveries and plan.deliveries[-1].destination == "s3" else "Local download"
    steps = request.max_train_steps or _int(options.get("max_train_steps"))
    why = "the trainer uploads its folder only after a validation run"
    if steps <= 0:
        raise CloudError(
            f"{where} needs max_train_steps: {why}, and the last checkpoint is published only when the "
            "checkpoint and validation intervals divide the step count.",
            code="delivery_needs_validation",
            hint='Set "max_train_steps" in config.json (or send max_train_steps with the job).',
        )
    if not str(options.get("validation_prompt") or "").strip() or _truthy(options.get("validation_disable")):
        raise CloudError(
            f"{where} needs validation: {why}, and this config has no validation_prompt "
            "(or turns validation off), so nothing would ever be uploaded.",
            code="delivery_needs_validation",
            hint='Add a "validation_prompt" (for example "a photo of sks plushie on a wooden desk") to '
            "config.json, or choose the Hub, which receives the final model.",
        )
    changes = []
    for modern, legacy in (
        ("checkpoint_step_interval", "checkpointing_steps"),
        ("validation_step_interval", "validation_steps"),
    ):
        key = legacy if legacy in options and modern not in options else modern
        current = _int(options.get(key))
        if current > 0 and steps % current == 0:
            continue
        fixed = _largest_divisor(steps, current if current > 0 else max(steps // 4, 1))
        plan.overrides[key] = fixed
        was = f"{key} {current}" if current > 0 else f"{key} (unset)"
        changes.append(f"{was} -> {fixed} (it must divide max_train_steps {steps})")
    limit = _int(options.get("checkpoints_total_limit"))
    if limit <= 0 or limit > SMALL_CHECKPOINT_LIMIT:
        plan.overrides["checkpoints_total_limit"] = SMALL_CHECKPOINT_LIMIT
        was = f"checkpoints_total_limit {limit}" if limit > 0 else "checkpoints_total_limit (unset)"
        changes.append(f"{was} -> {SMALL_CHECKPOINT_LIMIT} (every upload re-sends each checkpoint kept)")
    if changes:
        plan.warnings.append(f"Changed for {where.lower()} ({why}): " + "; ".join(changes) + ".")


def _largest_divisor(number: int, at_most: int) -> int:
    best = 1
    candidate = 1
    while candidate * candidate <= number:
        if number % candidate == 0:
            for divisor in (candidate, number // candidate):
                if best < divisor <= at_most:
                    best = divisor
        candidate += 1
    return best


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")
