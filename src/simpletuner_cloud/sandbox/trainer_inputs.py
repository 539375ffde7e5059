"""How the simulated trainer reads its inputs, with the real trainer's messages
(docs/trainer-contract.md sections 1.1 and 2.1): inline-JSON-or-path strings, the merged config,
the step count and the publishing destination."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simpletuner_cloud.sandbox.outputs import normalise_hub_id


class TrainerFailed(Exception):
    """The run stops; the message becomes the prediction's `error`."""


HUB_TOKEN_REQUIRED = "hf_token is required when using hub_model_id for HuggingFace Hub publishing."  # noqa: S105
NO_DATA = "Either dataset_archive or dataloader config must be provided."
NO_BACKENDS = "Must provide at least one data backend in the dataloader config."
NO_CONFIG = "No training config found at config/config.json."


def read_json_input(name: str, value: Any) -> Any:
    """`None`/`""` are absent; `{`/`[` starts inline JSON; anything else is a container path."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if text[0] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainerFailed(f"{name} looks like JSON but failed to parse: {exc}") from exc
    raise TrainerFailed(f"{name} file not found: {text}")


def _key(config: dict[str, Any], name: str) -> Any:
    """Keys with and without `--` mean the same option; the last one in dictionary order wins."""
    found = None
    for key, value in config.items():
        if key.lstrip("-") == name:
            found = value
    return found


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass
class TrainingPlan:
    config: dict[str, Any]  # the resolved config, as written to the output folder
    job_name: str
    output_dir: str  # where the logs say checkpoints are saved
    cog_output_dir: str  # what "Training complete. Output: ..." names
    total_steps: int
    epochs: int
    checkpoint_interval: int
    validation_interval: int
    batch_size: int
    accumulation: int
    learning_rate: float
    publish_s3: bool
    hub_model_id: str | None


def plan_training(inputs: dict[str, Any], job_name: str, *, default_steps: int, samples: int) -> TrainingPlan:
    config = read_json_input("config_json", inputs.get("config_json"))
    if not config:
        raise TrainerFailed(NO_CONFIG)
    if not isinstance(config, dict):
        raise TrainerFailed("config_json must be a JSON object.")
    # `--key` and `key` are one option; the resolved config is written with bare keys, last one wins.
    resolved = {str(key).lstrip("-"): value for key, value in config.items()}
    cog_output_dir = f"output/cog/{job_name}"
    output_dir = str(config["--output_dir"]) if "--output_dir" in config else cog_output_dir
    resolved["output_dir"] = output_dir
    resolved["data_backend_config"] = f"config/cog/{job_name}_multidatabackend.json"
    resolved["webhook_config"] = [
        {"webhook_type": "raw", "callback_url": "http://127.0.0.1/webhook", "log_level": "info"}
    ]
    if inputs.get("s3_bucket"):
        publishing = {
            "provider": "s3",
            "bucket": inputs["s3_bucket"],
            "base_path": inputs.get("s3_base_path"),
        }
        for name in ("region", "endpoint_url", "public_base_url"):
            if inputs.get(f"s3_{name}"):
                publishing[name] = inputs[f"s3_{name}"]
        for name in ("access_key", "secret_key"):
            if inputs.get(f"s3_{name}"):
                publishing[name] = "***"  # the sandbox never writes a secret to disk
        resolved["publishing_config"] = [publishing]
    hub_id = inputs.get("hub_model_id") or None
    if hub_id:
        resolved.update(
            push_to_hub=True, push_checkpoints_to_hub=True, hub_model_id=normalise_hub_id(str(hub_id))
        )
    epochs = _as_int(_key(config, "num_train_epochs"))
    steps = _as_int(inputs.get("max_train_steps")) or _as_int(_key(config, "max_train_steps"))
    if steps <= 0:
        steps = epochs * max(samples, 1) if epochs > 0 else default_steps
    resolved["max_train_steps"] = steps
    return TrainingPlan(
        config=resolved,
        job_name=job_name,
        output_dir=output_dir,
        cog_output_dir=cog_output_dir,
        total_steps=steps,
        epochs=max(epochs, 1),
        checkpoint_interval=_as_int(
            _key(config, "checkpoint_step_interval") or _key(config, "checkpointing_steps")
        ),
        validation_interval=(
            _as_int(_key(config, "validation_step_interval") or _key(config, "validation_steps"))
            if _key(config, "validation_prompt")
            else 0
        ),
        batch_size=max(_as_int(_key(config, "train_batch_size"), 1), 1),
        accumulation=max(_as_int(_key(config, "gradient_accumulation_steps"), 1), 1),
        learning_rate=_as_float(_key(config, "learning_rate"), 1e-4),
        publish_s3=bool(inputs.get("s3_bucket")),
        hub_model_id=hub_id,
    )
