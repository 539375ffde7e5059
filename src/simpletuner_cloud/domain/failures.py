"""Known ways a training fails, told from the prediction's error and the tail of its logs: a stable
code and a hint a person can act on (the seed's OOM advice, the trainer contract's messages). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FailureKind:
    code: str
    pattern: re.Pattern[str]
    hint: str


OOM_HINT = (
    "The GPU ran out of memory. Reduce the batch size (train_batch_size), turn on gradient checkpointing "
    "(gradient_checkpointing: true), or train a LoRA instead of a full fine-tune (model_type: lora); "
    "a larger GPU (hardware a100) also helps."
)

KINDS: tuple[FailureKind, ...] = (
    FailureKind(
        "trainer_out_of_memory",
        re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory", re.I),
        OOM_HINT,
    ),
    FailureKind(
        "trainer_hf_token_required",
        re.compile(r"hf_token is required when using hub_model_id"),
        "Set HF_TOKEN (or save a Hugging Face token in Publishing) so the trainer can push to the Hub.",
    ),
    FailureKind(
        "trainer_argument_unknown",
        re.compile(r"unrecognized arguments|error: argument|Unknown argument", re.I),
        "A config option is not one the trainer knows. Remove it from config.json and submit again.",
    ),
    FailureKind(
        "trainer_argument_invalid",
        re.compile(
            r"argument --\w+: (invalid (int|float) value|invalid choice|expected one argument"
            r"|Expected a boolean)|the following arguments are required|--lora_type=lycoris requires"
            r"|lycoris_config JSON must|Could not find lycoris config|When using --max_train_steps"
            r"|You must specify either --max_train_steps"
        ),
        "A config value is not one the trainer accepts (a type, a choice, a missing model_family, a LyCORIS "
        "run without its JSON, or no run length). Fix it in config.json and submit again.",
    ),
    FailureKind(
        "trainer_gated_model",
        re.compile(r"gated repo|401 Client Error.*huggingface|Access to model .* is restricted", re.I),
        "The base model is gated on Hugging Face: accept its licence on the Hub and set HF_TOKEN.",
    ),
    FailureKind(
        "trainer_dataset_missing",
        re.compile(r"The following dataset directories do not exist|Either dataset_archive or dataloader"),
        "The trainer found no data. Upload the images (a local dataset) or point the dataloader at a "
        "remote dataset (type: huggingface).",
    ),
    FailureKind(
        "trainer_dataset_unreadable",
        re.compile(
            r"Unsupported dataset archive format|Unsafe (zip|tar) path detected|Failed to download input"
        ),
        "The trainer could not read the uploaded archive. Submit again; if it repeats, report it.",
    ),
    FailureKind(
        "trainer_dataset_empty",
        re.compile(
            r"No images were discovered|dataset is empty|no samples|Must provide at least one data backend",
            re.I,
        ),
        "The dataset ended up empty on the trainer (the NSFW filter can drop images). Check the images "
        "and captions with `simpletuner cloud data preview`.",
    ),
    FailureKind(
        "trainer_config_invalid",
        re.compile(r"looks like JSON but failed to parse|No training config found|file not found:"),
        "The trainer could not read the config. Check config.json is valid JSON and submit again.",
    ),
    FailureKind(
        "trainer_timeout",
        re.compile(r"timed? ?out|exceeded the maximum run time|Prediction timed out", re.I),
        "Replicate stopped the run at its time limit. Lower max_train_steps, or split the training into "
        "shorter runs resumed from a checkpoint.",
    ),
)

GENERIC_HINT = "Open the job's logs (`simpletuner cloud jobs logs <id>`) for the trainer's own message."


def classify_failure(error: str | None, logs_tail: str = "") -> tuple[str, str]:
    """(code, hint) for a failed run; `trainer_failed` with a generic hint when nothing matches."""
    text = f"{error or ''}\n{logs_tail}"
    for kind in KINDS:
        if kind.pattern.search(text):
            return kind.code, kind.hint
    return "trainer_failed", GENERIC_HINT
