"""Everything checked before a byte is packaged: the config values the trainer's parser could not read
(and a LyCORIS run without its JSON), the dataset plan, the folders, the safe file selection, textfile
captions (checked, or with the user's agreement each image named after its caption), and the exact
archive size against Replicate's 100 MiB upload limit."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from simpletuner_cloud.datasets.archive import ArchiveLayout, plan_archive
from simpletuner_cloud.datasets.captions import CaptionChange, name_after_captions
from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.datasets.plan import DatasetPlan, check_textfile_captions, plan_datasets
from simpletuner_cloud.datasets.selection import Selection, select_files, skipped_summary
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.trainer.arguments import check_argument_values, check_lycoris

UPLOAD_LIMIT_BYTES = 104_857_600  # 100 MiB, Replicate's file upload limit


@dataclass
class Preflight:
    config: TrainingConfig
    plan: DatasetPlan
    selections: list[Selection] = field(default_factory=list)
    layout: ArchiveLayout | None = None
    limit: int = UPLOAD_LIMIT_BYTES
    caption_changes: dict[str, list[CaptionChange]] = field(default_factory=dict)  # by dataset id

    @property
    def needs_upload(self) -> bool:
        return self.plan.needs_upload

    @property
    def archive_size(self) -> int:
        return self.layout.size if self.layout else 0


def run_preflight(
    config: TrainingConfig,
    *,
    limit: int | None = UPLOAD_LIMIT_BYTES,
    allow_aws: bool = False,
    merge_local: bool = False,
    rename_to_captions: bool = False,
    model_families: Iterable[str] | None = None,
) -> Preflight:
    """Raises `dataset_unsupported`, `dataset_missing`, `dataset_empty` or `upload_too_large` (unless
    `limit` is None: a preview reports the size instead of refusing). `merge_local` is the user's
    agreement to merge several compatible local sets into one (see `plan_datasets`);
    `rename_to_captions` their agreement to name each image of a `textfile` set after its caption.
    Raises `trainer_argument_invalid` first for a value the trainer's parser would refuse; the model
    family is checked against the known list only when `model_families` (the extra names this server
    was told about) is given, since a newer trainer knows more."""
    check_argument_values(config.options, model_families)
    check_lycoris(config.options, config.lycoris)
    plan = plan_datasets(
        config, allow_aws=allow_aws, merge_local=merge_local, rename_to_captions=rename_to_captions
    )
    preflight = Preflight(config, plan, limit=UPLOAD_LIMIT_BYTES if limit is None else limit)
    if not plan.needs_upload:
        return preflight
    uploads = plan.uploads
    used: set[str] = set()
    for dataset in uploads:
        assert dataset.folder is not None
        # One set: its contents at the archive root, as the trainer expects; several: a folder each.
        prefix = ""
        if len(uploads) > 1:
            prefix = archive_folder_name(dataset.id)
            while prefix in used:
                prefix += "_"
            used.add(prefix)
        textfile = dataset.caption_strategy == "textfile"
        selection = select_files(dataset.folder, dataset.id, prefix, captions=textfile)
        if textfile and plan.rename_to_captions:
            preflight.caption_changes[dataset.id] = name_after_captions(selection)
        else:
            check_textfile_captions(dataset, selection)
        if selection.hard_linked:
            shown = ", ".join(selection.hard_linked[:5]) + (", ..." if len(selection.hard_linked) > 5 else "")
            plan.warnings.append(
                f"`{dataset.id}`: {len(selection.hard_linked)} file(s) have several hard links, all inside "
                f"the dataset folder, and are packaged under each name ({shown})."
            )
        if selection.media_count == 0:
            skipped = len(selection.skipped)
            raise CloudError(
                f"Dataset `{dataset.id}` has no images in {dataset.folder}"
                + (f" ({skipped} skipped file{'s' if skipped > 1 else ''})." if skipped else "."),
                code="dataset_empty",
                hint="Put .jpg/.png/.webp images in the folder; hidden files, links that leave it and "
                "secrets are never taken. `simpletuner cloud data preview` lists what was skipped and why.",
                details=skipped_summary(selection.skipped),
            )
        preflight.selections.append(selection)
    preflight.layout = plan_archive(item for selection in preflight.selections for item in selection.files)
    if limit is not None and preflight.layout.size > limit:
        raise too_large(preflight.layout.size, limit)
    return preflight


def too_large(size: int, limit: int) -> CloudError:
    return CloudError(
        f"The dataset archive would be {size:,} bytes ({size / 2**20:.1f} MiB); Replicate's upload limit "
        f"is {limit:,} bytes ({limit / 2**20:.0f} MiB).",
        code="upload_too_large",
        hint="Resize the images (about 1024 px on the short side is enough for most LoRAs) or convert them "
        "to JPEG/WebP, remove images you do not need, or use a remote dataset backend (a private "
        "Hugging Face dataset with `type: huggingface`).",
        details={"archive_bytes": size, "limit_bytes": limit},
    )


def archive_folder_name(dataset_id: str) -> str:
    """A safe single path segment for a dataset id."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id).strip("._") or "dataset"
    return name[:100]
