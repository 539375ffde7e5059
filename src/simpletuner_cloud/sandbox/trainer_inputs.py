"""How the simulated trainer reads its inputs, with the real trainer's messages
(docs/trainer-contract.md sections 1.1 and 2.1): inline-JSON-or-path strings, the merged config,
what its parser and start-up checks refuse, the step count and the publishing destination."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simpletuner_cloud.sandbox.outputs import normalise_hub_id
from simpletuner_cloud.sandbox.trainer_options import argument_error, parsed_value, unknown_options


class TrainerFailed(Exception):
    """The run stops; the message becomes the prediction's `error`."""


class RunCanceled(Exception):
    """A scripted cancel: the run stops and the job ends `canceled`."""


HUB_TOKEN_REQUIRED = "hf_token is required when using hub_model_id for HuggingFace Hub publishing."  # noqa: S105
NO_DATA = "Either dataset_archive or dataloader config must be provided."
NO_BACKENDS = "Must provide at least one data backend in the dataloader config."
NO_CONFIG = "No training config found at config/config.json."
STEPS_AND_EPOCHS = (
    "When using --max_train_steps (MAX_NUM_STEPS), you must set --num_train_epochs (NUM_EPOCHS) to 0."
)
NO_STOP_CONDITION = "You must specify either --max_train_steps or --num_train_epochs with a value > 0"
LYCORIS_PATH_MISSING = (
    "--lora_type=lycoris requires you to add a JSON configuration file location with --lycoris_config"
)


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
    """Only for options without a type in `trainer_options` (the schedule intervals)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class TrainingPlan:
    config: dict[str, Any]  # the resolved config (bare keys, secrets masked): model card, placeholder
    arguments: dict[str, Any]  # what the cog hands the parser, in its order, secrets included
    unknown: list[str]  # `--key` names the parser does not know
    parse_error: str | None  # argparse's message: the run stops before anything loads
    startup_error: str | None  # a check after parsing (steps with epochs, LyCORIS): stops at once
    stop_error: str | None  # nothing decides the run length: stops once the data backends are set up
    job_name: str
    output_dir: str  # where the logs say checkpoints are saved
    cog_output_dir: str  # what "Training complete. Output: ..." names
    total_steps: int
    epochs: int
    checkpoint_interval: int
    checkpoints_total_limit: int  # 0: keep every checkpoint
    validation_interval: int  # 0: no validation (no prompt or no interval), so no S3 publishing
    validation_prompt: str
    validation_resolution: str
    batch_size: int
    accumulation: int
    learning_rate: float
    publish_s3: bool
    hub_model_id: str | None
    images_mode: bool  # the dataset came from `images` (the trainer generated its entry and caches)
    text_cache: bool  # the trainer adds a text-embeds cache under <output_dir>/cache/text/<family>

    @property
    def folder_name(self) -> str:
        """The run folder's name, which S3 keys carry (normally the cog job id)."""
        return self.output_dir.rstrip("/").rsplit("/", 1)[-1]

    @property
    def model_family(self) -> str:
        return str(self.config.get("model_family") or "flux")


NSFW_SETTINGS: dict[str, Any] = {  # forced by the cog, whatever the config says (trainer-contract 2.5)
    "--enable_nsfw_check": True,
    "--nsfw_check_models": "Falconsai/nsfw_image_detection:threshold=0.5,"
    "AdamCodd/vit-base-nsfw-detector:threshold=0.5,hoangtrung1801/nsfw-vit-model:threshold=0.5",
    "--nsfw_check_min_votes": 2,
    "--nsfw_check_backend_types": "all",
    "--nsfw_check_sample_types": "image,conditioning",
}


def _publishing(inputs: dict[str, Any], *, mask: bool) -> dict[str, Any]:
    entry = {"provider": "s3", "bucket": inputs["s3_bucket"], "base_path": inputs.get("s3_base_path")}
    for name in ("region", "endpoint_url"):
        if inputs.get(f"s3_{name}"):
            entry[name] = inputs[f"s3_{name}"]
    for name in ("access_key", "secret_key"):
        if inputs.get(f"s3_{name}"):
            entry[name] = "***" if mask else inputs[f"s3_{name}"]
    if inputs.get("s3_public_base_url"):
        entry["public_base_url"] = inputs["s3_public_base_url"]
    return entry


def _merged_arguments(
    config: dict[str, Any], inputs: dict[str, Any], job_name: str, cog_output_dir: str, hub_id: str | None
) -> dict[str, Any]:
    """The cog's merge (trainer-contract 2.1): config, then overrides, then `--max_train_steps`;
    `--output_dir` only when the config has no dashed one; data backend and webhook replaced; the
    NSFW settings forced. The S3 keys ride inside `publishing_config`, unmasked."""
    nsfw_names = {name.removeprefix("--") for name in NSFW_SETTINGS}
    merged = {key: value for key, value in config.items() if str(key).removeprefix("--") not in nsfw_names}
    if hub_id:
        merged.update(
            {
                "--push_to_hub": True,
                "--push_checkpoints_to_hub": True,
                "--hub_model_id": normalise_hub_id(hub_id),
            }
        )
    if inputs.get("lycoris_config"):
        merged["--lycoris_config"] = f"config/cog/{job_name}_lycoris_config.json"
    if inputs.get("s3_bucket"):
        merged["publishing_config"] = [_publishing(inputs, mask=False)]
    if inputs.get("max_train_steps") is not None:
        merged["--max_train_steps"] = inputs["max_train_steps"]
    merged.setdefault("--output_dir", cog_output_dir)
    merged["--data_backend_config"] = f"config/cog/{job_name}_multidatabackend.json"
    merged["webhook_config"] = [
        {"webhook_type": "raw", "callback_url": "http://127.0.0.1/webhook", "log_level": "info"}
    ]
    merged.update(NSFW_SETTINGS)
    return merged


def read_config(inputs: dict[str, Any]) -> Any:
    """`config_json` as read with the other string inputs (trainer-contract 2.1 step 1); an absent
    or empty config is only refused at the merge (`require_config`)."""
    return read_json_input("config_json", inputs.get("config_json"))


def require_config(config: Any) -> dict[str, Any]:
    """The merge (step 4): `{}` or nothing falls back to `config/config.json`, absent from the image."""
    if not config:
        raise TrainerFailed(NO_CONFIG)
    if not isinstance(config, dict):
        raise TrainerFailed("config_json must be a JSON object.")
    return config


def _parsed_int(merged: dict[str, Any], name: str, default: int | None) -> int | None:
    text = parsed_value(merged, name)
    return default if text is None else int(text)  # argument_error has refused what int() cannot read


def _lycoris_error(merged: dict[str, Any], lycoris: Any, cog_path: str) -> str | None:
    """`parse_cmdline_args`' LyCORIS checks: a path to read, that path inside the container, and the
    JSON's required keys (AssertionError texts)."""
    if (parsed_value(merged, "lora_type") or "standard").lower() != "lycoris":
        return None
    path = parsed_value(merged, "lycoris_config")
    if path is None:
        return LYCORIS_PATH_MISSING
    if path != cog_path or lycoris is None:  # nothing of the user's disk exists in the container
        return f"Could not find lycoris config at '{path}'. Looked in: config/{path}"
    spec = lycoris if isinstance(lycoris, dict) else {}
    for key in ("algo", "multiplier"):
        if key not in spec:
            return f"lycoris_config JSON must contain {key} key"
    if spec.get("full_matrix") is not True and "linear_dim" not in spec:
        return "lycoris_config JSON must contain linear_dim key if full_matrix is not set."
    if "linear_alpha" not in spec:
        return "lycoris_config JSON must contain linear_alpha key"
    return None


def plan_training(
    config: dict[str, Any],
    inputs: dict[str, Any],
    job_name: str,
    *,
    samples: int,
    images_mode: bool = True,
    text_cache: bool = True,
    known_extra: tuple[str, ...] = (),
    reject_unknown: bool = True,
    lycoris: Any = None,
) -> TrainingPlan:
    """The run as the trainer would set it up from the merged arguments. Nothing here raises: the
    parser's and the start-up checks' failures are carried in the plan, so the run can print them
    where the trainer does."""
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
        resolved["publishing_config"] = [_publishing(inputs, mask=True)]  # never a secret on disk
    hub_id = inputs.get("hub_model_id") or None
    if hub_id:
        resolved.update(
            push_to_hub=True, push_checkpoints_to_hub=True, hub_model_id=normalise_hub_id(str(hub_id))
        )
    merged = _merged_arguments(config, inputs, job_name, cog_output_dir, hub_id)
    unknown = unknown_options(config, known_extra)
    parse_error = argument_error(merged, unknown if reject_unknown else [])
    startup_error = stop_error = None
    steps, epochs, learning_rate = 1, 1, 1e-4
    if parse_error is None:
        max_steps = _parsed_int(merged, "max_train_steps", None)
        epochs = _parsed_int(merged, "num_train_epochs", 1) or 0  # the field registry's default is 1
        if max_steps is not None and max_steps > 0 and epochs > 0:
            startup_error = STEPS_AND_EPOCHS
        else:
            startup_error = _lycoris_error(merged, lycoris, f"config/cog/{job_name}_lycoris_config.json")
        if max_steps is not None and max_steps > 0:
            steps = max_steps
        elif (max_steps or 0) < 0 or epochs <= 0:
            stop_error = NO_STOP_CONDITION  # for negative values the sandbox's choice (see decisions)
        else:
            steps = epochs * max(samples, 1)
        learning_rate = float(parsed_value(merged, "learning_rate") or 1e-4)
    resolved["max_train_steps"] = steps
    epochs = max(epochs, 1)
    steps_per_epoch = max(1, -(-steps // epochs))

    def interval(step_names: tuple[str, ...], epoch_name: str) -> int:
        for name in step_names:
            if _as_int(_key(config, name)) > 0:
                return _as_int(_key(config, name))
        return _as_int(_key(config, epoch_name)) * steps_per_epoch

    prompt = str(_key(config, "validation_prompt") or "")
    resolution = _key(config, "validation_resolution") or _key(config, "resolution") or 1024
    return TrainingPlan(
        config=resolved,
        arguments=merged,
        unknown=unknown,
        parse_error=parse_error,
        startup_error=startup_error,
        stop_error=stop_error,
        job_name=job_name,
        output_dir=output_dir,
        cog_output_dir=cog_output_dir,
        total_steps=steps,
        epochs=epochs,
        checkpoint_interval=interval(
            ("checkpoint_step_interval", "checkpointing_steps"), "checkpoint_epoch_interval"
        ),
        checkpoints_total_limit=max(_parsed_int(merged, "checkpoints_total_limit", 0) or 0, 0)
        if parse_error is None
        else 0,
        validation_interval=(
            interval(("validation_step_interval", "validation_steps"), "validation_epoch_interval")
            if prompt
            else 0
        ),
        validation_prompt=prompt,
        validation_resolution=str(resolution) if "x" in str(resolution) else f"{resolution}x{resolution}",
        batch_size=max(_parsed_int(merged, "train_batch_size", 1) or 1, 1) if parse_error is None else 1,
        accumulation=max(_parsed_int(merged, "gradient_accumulation_steps", 1) or 1, 1)
        if parse_error is None
        else 1,
        learning_rate=learning_rate,
        publish_s3=bool(inputs.get("s3_bucket")),
        hub_model_id=hub_id,
        images_mode=images_mode,
        text_cache=text_cache,
    )
