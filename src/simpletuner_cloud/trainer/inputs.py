"""Map a job (config, dataset plan, uploaded archive URL, destination) to the inputs of
`simpletuner/advanced-trainer`, exactly per trainer-contract §1.1 and §2.6. Pure: no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.datasets.plan import CACHE_TYPES, DatasetPlan, is_enabled
from simpletuner_cloud.errors import CloudError

# Replaced or set by the trainer, or naming paths on this disk: never sent in config_json.
DROPPED_OPTIONS = frozenset({
    "output_dir", "data_backend_config", "publishing_config", "webhook_config", "lycoris_config",
    "push_to_hub", "push_checkpoints_to_hub", "hub_model_id", "report_to",
})  # fmt: skip
# Anything token-like stays out of config_json: Replicate stores and shows it verbatim.
SECRET_OPTION = re.compile(
    r"(^|_)(token|secret|password|passwd|api_?key|access_key|private_key|credentials?)($|_)", re.I
)


@dataclass(frozen=True)
class HubDestination:
    hub_model_id: str
    hf_token: str


@dataclass(frozen=True)
class S3Destination:
    bucket: str
    region: str
    access_key: str | None = None
    secret_key: str | None = None
    endpoint_url: str | None = None
    base_path: str | None = None
    public_base_url: str | None = None


Destination = HubDestination | S3Destination


@dataclass(frozen=True)
class JobSpec:
    config: TrainingConfig
    plan: DatasetPlan
    destination: Destination | None
    archive_url: str | None = None
    hf_token: str | None = None  # for gated base models or private datasets, even without the Hub
    max_train_steps: int | None = None


def build_trainer_inputs(spec: JobSpec) -> dict[str, Any]:
    """The prediction's `input`. Empty values are left out: the trainer reads `"{}"`/`"[]"` as present."""
    if spec.destination is None:
        raise CloudError(
            "The job has no destination for the trained model; the trainer would discard the weights.",
            code="trainer_input_invalid",
            hint="Set a Hugging Face repo (hub_model_id plus an HF token) or an S3 bucket.",
        )
    inputs = dataset_inputs(spec)
    hf_token = spec.hf_token
    destination = spec.destination
    if isinstance(destination, HubDestination):
        inputs["hub_model_id"] = destination.hub_model_id
        hf_token = destination.hf_token or hf_token
    else:
        inputs["s3_bucket"] = destination.bucket
        inputs["s3_region"] = destination.region
        for name in ("endpoint_url", "base_path", "public_base_url", "access_key", "secret_key"):
            inputs[f"s3_{name}"] = getattr(destination, name)
    inputs["hf_token"] = hf_token
    return {key: value for key, value in inputs.items() if value not in (None, "")}


def dataset_inputs(spec: JobSpec) -> dict[str, Any]:
    """The inputs that carry the training setup and its data (no destination, no secrets). The upload
    path checks these against the trainer version before sending a byte."""
    inputs: dict[str, Any] = {"config_json": json.dumps(trainer_config(spec), sort_keys=True)}
    if spec.plan.needs_upload:
        if not spec.archive_url:
            raise CloudError("Upload mode needs the uploaded archive URL.", code="trainer_input_invalid")
        inputs["images"] = spec.archive_url
    else:
        inputs["dataloader_json"] = json.dumps(remote_dataloader(spec), sort_keys=True)
    if spec.max_train_steps:
        inputs["max_train_steps"] = int(spec.max_train_steps)
    if spec.config.options.get("lora_type") == "lycoris":
        if not spec.config.lycoris:
            raise CloudError(
                "lora_type is lycoris but no LyCORIS config was found.",
                code="config_invalid",
                hint="Put lycoris_config.json beside config.json or point lycoris_config at it.",
            )
        inputs["lycoris_config"] = json.dumps(spec.config.lycoris, sort_keys=True)
    return inputs


def trainer_config(spec: JobSpec) -> dict[str, Any]:
    """config_json: the user's options minus what the trainer replaces, local paths and secrets."""
    options = {
        key: value
        for key, value in spec.config.options.items()
        if key not in DROPPED_OPTIONS and not SECRET_OPTION.search(key)
    }
    options["report_to"] = "none"  # tracker credentials cannot be passed to the trainer
    steps = spec.max_train_steps or _int(options.get("max_train_steps"))
    if steps:
        options["num_train_epochs"] = 0
    if spec.plan.needs_upload:
        # The trainer's generated entry takes resolution from the config: copy the dataset's in.
        for key, value in (
            ("resolution", spec.plan.resolution),
            ("resolution_type", spec.plan.resolution_type),
        ):
            if value is not None:
                options[key] = value
    return options


def run_options(spec: JobSpec) -> dict[str, Any]:
    """The options the trainer runs with: `config_json` with the `max_train_steps` input over it, as
    the cog merges them (trainer-contract 2.1). What an estimate must read, not what is sent."""
    options = trainer_config(spec)
    if spec.max_train_steps:
        options["max_train_steps"] = int(spec.max_train_steps)
    return options


def remote_dataloader(spec: JobSpec) -> list[dict[str, Any]]:
    """Only remote entries and caches, with cache folders relative to the trainer's working dir."""
    entries = []
    for planned in spec.plan.datasets:
        entry = dict(planned.entry)
        if not is_enabled(entry):
            continue
        if planned.action == "skip" and str(entry.get("dataset_type")) not in CACHE_TYPES:
            continue
        if planned.action not in ("remote", "skip"):
            continue
        if str(entry.get("type") or "local") == "local" and (
            entry.get("instance_data_dir") or entry.get("instance_data_root")
        ):
            raise CloudError(  # the trainer would look for this disk's folder inside its container
                f"Dataset `{planned.id}` names a folder on this machine, which the trainer cannot read.",
                code="dataset_unsupported",
                hint="Remove instance_data_dir from cache entries, or upload the images instead.",
            )
        for key in ("cache_dir", "cache_dir_vae"):
            if key in entry:
                entry[key] = _relative_cache(entry[key], planned.id, key)
        entries.append(entry)
    return entries


def _relative_cache(value: Any, dataset_id: str, key: str) -> str:
    path = PurePosixPath(str(value).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or str(value).startswith("~"):
        return f"cache/{'vae' if key == 'cache_dir_vae' else 'text'}/{{model_family}}/{dataset_id}"
    return str(path)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
