"""Decide, per trainer-contract §2.7 and §3.3, what happens to each dataset entry (upload, pass through as
a remote backend, skip, or refuse) and whether the published trainer can honour the whole combination."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from simpletuner_cloud.datasets.configs import TrainingConfig, json_type, path_is
from simpletuner_cloud.datasets.selection import Selection
from simpletuner_cloud.errors import CloudError

Action = Literal["upload", "remote", "skip", "refuse"]
CACHE_TYPES = frozenset({"text_embeds", "image_embeds", "conditioning_image_embeds"})
UPLOADABLE_CAPTIONS = frozenset({"filename", "textfile"})
WHAT_WORKS = (
    "What works on the published trainer: one local image folder captioned by file name, or with "
    "`textfile` captions that equal the file names, or that name each image in the archive if you agree "
    "(`rename_to_captions: true`, `--rename-to-captions` on the command line); several folders with the "
    "same resolution only if you agree to merge them into one set (`merge_local_datasets: true`, "
    "`--merge`); or only remote datasets (`huggingface`, `webshart` from a URL or the Hub). For anything "
    "else, push the data to a (private) Hugging Face dataset and use `type: huggingface` with your HF "
    "token."
)
MERGE_LOSES = (
    "per-set repeats, size filters, crops and caption strategy differences (every image is captioned by "
    "its file name and centre-cropped square)"
)


@dataclass
class PlannedDataset:
    id: str
    action: Action
    reason: str
    entry: dict[str, Any]
    folder: Path | None = None  # the resolved local folder, for uploads

    @property
    def caption_strategy(self) -> str:
        return str(self.entry.get("caption_strategy") or "filename")


@dataclass
class DatasetPlan:
    mode: Literal["upload", "remote"]
    datasets: list[PlannedDataset]
    resolution: Any = None
    resolution_type: Any = None
    warnings: list[str] = field(default_factory=list)
    rename_to_captions: bool = False  # the user agreed: textfile sets are named after their captions

    @property
    def uploads(self) -> list[PlannedDataset]:
        return [d for d in self.datasets if d.action == "upload"]

    @property
    def remotes(self) -> list[PlannedDataset]:
        return [d for d in self.datasets if d.action == "remote"]

    @property
    def needs_upload(self) -> bool:
        return self.mode == "upload"


def is_enabled(entry: dict[str, Any]) -> bool:
    return not any(_truthy(entry.get(key)) for key in ("disabled", "disable"))


def classify(entry: dict[str, Any], allow_aws: bool = False) -> tuple[Action, str]:
    """One entry on its own, before looking at the disk."""
    storage = str(entry.get("type") or "local")
    kind = str(entry.get("dataset_type") or "image")
    if not is_enabled(entry):
        return "skip", "disabled"
    if kind in CACHE_TYPES or storage == "memory":
        return "skip", "cache entry (the trainer builds its own caches)"
    if storage == "huggingface":
        return "remote", "Hugging Face dataset, read by the trainer"
    if storage == "webshart":
        return ("remote", "webshart from a URL or the Hub") if _remote_source(entry) else (
            "refuse", "webshart from a local source cannot be reached by the trainer")  # fmt: skip
    if storage == "aws":
        if allow_aws:
            return "remote", "S3 bucket, read by the trainer with the keys in its entry"
        return "refuse", "aws entries carry their access keys inline, and Replicate stores inputs verbatim"
    if storage == "csv":
        return "refuse", "csv datasets need the CSV file on the trainer's disk"
    if storage != "local":
        return "refuse", f"unknown dataset type `{storage}`"
    if kind != "image":
        return "refuse", f"local `{kind}` datasets cannot be sent as an image archive"
    if entry.get("conditioning_data") or entry.get("conditioning"):
        return "refuse", "conditioning data is lost when the trainer builds its own dataset entry"
    caption = str(entry.get("caption_strategy") or "filename")
    if caption not in UPLOADABLE_CAPTIONS:
        return "refuse", f"`{caption}` captions are lost: the trainer captions uploads by file name"
    if not (entry.get("instance_data_dir") or entry.get("instance_data_root")):
        return "refuse", "local dataset without instance_data_dir"
    return "upload", "local images, sent as the `images` archive"


def plan_datasets(
    config: TrainingConfig,
    allow_aws: bool = False,
    merge_local: bool = False,
    rename_to_captions: bool = False,
) -> DatasetPlan:
    """The one combination the trainer can honour, or `dataset_unsupported` saying what would work.
    Several local sets are merged into one only with `merge_local` (the user agreed to what that loses),
    and only when they are compatible. `rename_to_captions` is carried to preflight, which names the
    images of `textfile` sets after their captions."""
    if not config.dataloader_found:
        raise CloudError(
            "The training config has no readable dataset list. " + " ".join(config.problems),
            code="config_invalid",
            hint="Point data_backend_config at a multidatabackend.json, or put one beside config.json.",
        )
    planned = []
    for index, entry in enumerate(config.datasets):
        action, reason = classify(entry, allow_aws)
        planned.append(PlannedDataset(_dataset_id(entry, index), action, reason, entry))
    refused = [d for d in planned if d.action == "refuse"]
    if refused:
        raise unsupported("; ".join(f"`{d.id}`: {d.reason}" for d in refused))
    uploads = [d for d in planned if d.action == "upload"]
    remotes = [d for d in planned if d.action == "remote"]
    if not uploads and not remotes:
        raise CloudError(
            "No enabled training dataset in the dataset list (only caches or disabled entries).",
            code="dataset_missing",
            hint="Add a local image dataset (type `local`, dataset_type `image`) with instance_data_dir.",
        )
    if uploads and remotes:
        raise unsupported(
            f"local ({', '.join(d.id for d in uploads)}) and remote ({', '.join(d.id for d in remotes)}) "
            "datasets are mixed: the trainer ignores the upload when it is given a dataset list"
        )
    if remotes:
        return DatasetPlan("remote", planned)
    plan = _upload_plan(config, planned, uploads, merge_local)
    plan.rename_to_captions = rename_to_captions
    for dataset in uploads:
        if rename_to_captions and dataset.caption_strategy == "textfile":
            plan.warnings.append(
                f"`{dataset.id}`: each image is named after its caption in the archive, as agreed (the files "
                "on disk keep their names); the preview lists every caption that had to change."
            )
    return plan


def _upload_plan(
    config: TrainingConfig, planned: list[PlannedDataset], uploads: list[PlannedDataset], merge_local: bool
) -> DatasetPlan:
    sizes = {_size(d, config) for d in uploads}
    if len(sizes) > 1:
        listed = ", ".join(f"{d.id}: {_setting(d.entry, config, 'resolution')}" for d in uploads)
        raise unsupported(
            f"the local datasets use different resolutions ({listed}); the trainer builds one set with one "
            "resolution from the upload, so they cannot be merged"
        )
    if len(uploads) > 1 and not merge_local:
        raise several_local(uploads)
    for dataset in uploads:
        dataset.folder = resolve_dataset_folder(config, dataset)
    first = uploads[0].entry
    resolution, resolution_type = (
        _setting(first, config, "resolution"),
        _setting(first, config, "resolution_type"),
    )
    plan = DatasetPlan("upload", planned, resolution, resolution_type)
    if len(uploads) > 1:
        plan.warnings.append(
            f"{len(uploads)} local datasets are merged into one set, as agreed (one folder each in the "
            f"archive); lost: {MERGE_LOSES}."
        )
    for dataset in uploads:
        entry = dataset.entry
        if entry.get("crop_aspect") not in (None, "square") or entry.get("crop_style") not in (
            None,
            "center",
        ):
            plan.warnings.append(f"`{dataset.id}`: images become centred square crops on the trainer.")
        if _truthy(entry.get("repeats")):
            plan.warnings.append(f"`{dataset.id}`: repeats={entry['repeats']} is lost.")
    return plan


def resolve_dataset_folder(config: TrainingConfig, dataset: PlannedDataset) -> Path:
    """Relative folders resolve against the environment folder first, then the configs dir, its parent and
    the working dir; the first that exists wins. `dataset_missing` names where it looked."""
    raw = str(dataset.entry.get("instance_data_dir") or dataset.entry.get("instance_data_root"))
    value = raw.replace("{id}", dataset.id).replace("{model_family}", config.model_family or "")
    if "{env:" in value:
        raise CloudError(
            f"The folder of dataset `{dataset.id}` ({raw}) uses an {{env:...}} placeholder.",
            code="dataset_missing",
            hint="Write the folder path out in multidatabackend.json.",
        )
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [base / path for base in config.search_dirs]
    for candidate in candidates:
        if path_is(candidate, "dir"):
            return candidate
    raise CloudError(
        f"The folder of dataset `{dataset.id}` ({raw}) does not exist. Looked in: "
        + ", ".join(str(c) for c in candidates),
        code="dataset_missing",
        hint="Fix instance_data_dir in multidatabackend.json; relative paths start at the environment "
        "folder.",
    )


def unsupported(why: str) -> CloudError:
    message = f"The published trainer cannot run this dataset setup: {why}."
    return CloudError(message, code="dataset_unsupported", hint=WHAT_WORKS)


def several_local(uploads: list[PlannedDataset]) -> CloudError:
    """Issue 5's example: the trainer builds one set from one archive, so merging is the user's call."""
    names = ", ".join(f"`{d.id}`" for d in uploads)
    return CloudError(
        f"The published trainer cannot run this dataset setup: {len(uploads)} local datasets ({names}), "
        "and it trains on one uploaded image set. What would work: use one local dataset (set "
        "`disabled: true` on the others); or agree to merge them into one set with "
        "`merge_local_datasets: true` in the API request (`--merge` on the command line), which loses "
        f"{MERGE_LOSES}; or push the data to a (private) Hugging Face dataset and use "
        "`type: huggingface` with your HF token.",
        code="dataset_unsupported",
        hint="`simpletuner cloud data preview <config> --merge` shows what the merged set would hold.",
    )


def _dataset_id(entry: dict[str, Any], index: int) -> str:
    value = entry.get("id")
    if value is None or value == "":
        return f"dataset-{index + 1}"
    if not isinstance(value, str):
        raise CloudError(
            f"Dataset #{index + 1} has an id that is not text (a {json_type(value)}).",
            code="config_invalid",
            hint='Give every dataset in multidatabackend.json a text id, e.g. "id": "my-photos".',
        )
    return value


def _size(dataset: PlannedDataset, config: TrainingConfig) -> tuple[float | None, str | None]:
    """What the trainer would use as (resolution, resolution_type) for this set: a finite positive
    number (pixels, or megapixels for `area`) and a name. Anything else is refused here rather than
    compared."""
    resolution = _setting(dataset.entry, config, "resolution")
    kind = _setting(dataset.entry, config, "resolution_type")
    number: float | None = None
    if resolution is not None:
        try:
            number = float(resolution) if not isinstance(resolution, bool | dict | list) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number) or number <= 0:
            raise CloudError(
                f"Dataset `{dataset.id}` has a `resolution` that is not a positive number "
                f"(a {json_type(resolution)}).",
                code="config_invalid",
                hint="Set resolution to a number, e.g. 1024 (pixels) or 1.0 (megapixels with `area`).",
            )
    if kind is not None and not isinstance(kind, str):
        raise CloudError(
            f"Dataset `{dataset.id}` has a `resolution_type` that is not text (a {json_type(kind)}).",
            code="config_invalid",
            hint="Use pixel_area (recommended), pixel or area.",
        )
    return number, kind


def _setting(entry: dict[str, Any], config: TrainingConfig, key: str) -> Any:
    return entry.get(key) if entry.get(key) is not None else config.options.get(key)


def _remote_source(entry: dict[str, Any]) -> bool:
    nested = entry.get("webshart")
    nested = nested if isinstance(nested, dict) else {}
    source = str(entry.get("webshart_source") or entry.get("source") or nested.get("source") or "")
    if re.match(r"^(https?|hf|s3|gs)://", source):
        return True
    # `owner/name` is a Hub dataset id unless a folder of that name exists here.
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source)) and not path_is(Path(source))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "none")
    return bool(value)


def check_textfile_captions(dataset: PlannedDataset, selection: Selection) -> None:
    """`textfile` captions survive the upload only when each equals the caption the trainer derives
    from the file name (stem, `_` as spaces). Refuses with the names of the files that differ."""
    if dataset.caption_strategy != "textfile":
        return
    texts = {item.arcname[: -len(".txt")]: item for item in selection.files if item.extension == "txt"}
    mismatches = []
    for item in selection.files:
        if not item.is_media:
            continue
        stem = item.arcname.rsplit(".", 1)[0]
        caption_file = texts.get(stem)
        expected = PurePosixPath(stem).name.replace("_", " ").strip()
        if caption_file is None:
            mismatches.append(f"{item.arcname} (no .txt)")
            continue
        lines = {line.strip() for line in caption_file.source.read_text("utf-8", "replace").splitlines()}
        if lines - {""} != {expected}:
            mismatches.append(caption_file.arcname)
    if mismatches:
        shown = ", ".join(mismatches[:20]) + (
            f" and {len(mismatches) - 20} more" if len(mismatches) > 20 else ""
        )
        raise CloudError(
            f"Dataset `{dataset.id}` uses textfile captions, but the trainer captions uploads by file name, "
            f"and these captions differ from their file names: {shown}.",
            code="dataset_unsupported",
            hint="Agree to have each image named after its caption in the archive (the files on disk keep "
            "their names): `rename_to_captions: true` in the API request, `--rename-to-captions` on the "
            "command line, or the 'Name images after their captions' box in the Cloud tab. Or rename each "
            "image to its caption with `_` for spaces (`a_red_car.jpg` for 'a red car'), or set "
            "caption_strategy to filename if the names already say it.",
            details={"mismatching_files": mismatches},
        )
