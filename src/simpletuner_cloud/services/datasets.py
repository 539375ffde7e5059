"""Dataset use cases for the API and CLI: list and read configs, preview what would be uploaded, package
the archive (in a worker thread for the server), and install the shipped example environment. Uploading
lives in `services/uploads.py`."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import anyio

from simpletuner_cloud.datasets.archive import ArchiveResult, Progress, build_archive, manifest_as_json
from simpletuner_cloud.datasets.captions import CHANGES, CaptionChange
from simpletuner_cloud.datasets.configs import TrainingConfig, load_inline
from simpletuner_cloud.datasets.environments import list_environments, load_environment, load_training_config
from simpletuner_cloud.datasets.preflight import UPLOAD_LIMIT_BYTES, Preflight, run_preflight, too_large
from simpletuner_cloud.datasets.selection import REASONS, Selection, skipped_summary
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.security.redaction import secret_value
from simpletuner_cloud.services.dataset_views import (
    ConfigListResponse,
    ConfigResponse,
    DataConsentPreviewResponse,
)
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.trainer.inputs import SECRET_OPTION

EXAMPLE_NAME = "flux-lora-example"


def list_configs(settings: Settings) -> ConfigListResponse:
    summaries = list_environments(settings.effective_configs_dir)
    configs = [
        {"name": s.name, "path": str(s.path), "model_family": s.model_family, "model_type": s.model_type,
         "description": s.description, "datasets": s.datasets, "problems": s.problems}
        for s in summaries
    ]  # fmt: skip
    return ConfigListResponse.model_validate(
        {"configs_dir": str(settings.effective_configs_dir), "configs": configs}
    )


def get_config(settings: Settings, name: str) -> ConfigResponse:
    return describe_config(load_environment(name, settings.effective_configs_dir))


def describe_config(config: TrainingConfig) -> ConfigResponse:
    """The parsed config for display; secrets replaced everywhere, the LyCORIS block included."""
    return ConfigResponse(
        name=config.name,
        source=config.source,
        config_path=str(config.config_path) if config.config_path else None,
        dataloader_path=str(config.dataloader_path) if config.dataloader_path else None,
        config=redact_secrets(config.options),
        datasets=[redact_secrets(entry) for entry in config.datasets],
        lycoris=redact_secrets(config.lycoris),
        problems=config.problems,
    )


REDACTED = "<redacted>"


def redact_secrets(value: Any, key: str = "") -> Any:
    """Values under secret-looking keys (`hf_token`, `aws_secret_access_key`), and token-shaped strings
    under any key (`r8_...`, `hf_...`, `AKIA...`, an AWS secret under a key mentioning a secret)."""
    if isinstance(value, dict):
        return {
            name: REDACTED
            if SECRET_OPTION.search(str(name)) and item not in (None, "")
            else redact_secrets(item, str(name))
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(item, key) for item in value]
    if isinstance(value, str) and secret_value(key, value):
        return REDACTED
    return value


def load_config(
    settings: Settings, reference: str | None = None, config_json: Any = None, dataloader_json: Any = None
) -> TrainingConfig:
    """An environment name or path, or inline JSON (both `config_json` and `dataloader_json`)."""
    if reference:
        return load_training_config(reference, settings.effective_configs_dir)
    return load_inline(config_json, dataloader_json)


def preview_data_consent(
    settings: Settings,
    reference: str | None = None,
    config_json: Any = None,
    dataloader_json: Any = None,
    *,
    merge_local: bool = False,
    rename_to_captions: bool = False,
) -> DataConsentPreviewResponse:
    """What would leave this machine: per dataset every archive entry (with the file it comes from), the
    captions that change, the skipped files with reasons (the first 50, counted by reason), and the
    archive size against the limit. An oversized archive is reported, not raised, so it can be shown.
    Several local sets are refused unless `merge_local`; `textfile` captions that differ from the file
    names unless `rename_to_captions` (the user agreed to each)."""
    config = load_config(settings, reference, config_json, dataloader_json)
    preflight = run_preflight(
        config, limit=None, merge_local=merge_local, rename_to_captions=rename_to_captions
    )
    return describe_preflight(preflight)


def describe_preflight(preflight: Preflight) -> DataConsentPreviewResponse:
    selections = {s.dataset_id: s for s in preflight.selections}
    datasets = []
    for planned in preflight.plan.datasets:
        item: dict[str, Any] = {"id": planned.id, "action": planned.action, "reason": planned.reason}
        selection = selections.get(planned.id)
        if selection is not None:
            item |= describe_selection(selection, preflight.caption_changes.get(planned.id, []))
        datasets.append(item)
    over = preflight.archive_size > UPLOAD_LIMIT_BYTES
    return DataConsentPreviewResponse.model_validate(
        {
            "config": preflight.config.name,
            "mode": preflight.plan.mode,
            "needs_upload": preflight.needs_upload,
            "rename_to_captions": preflight.plan.rename_to_captions,
            "datasets": datasets,
            "archive_bytes": preflight.archive_size,
            "limit_bytes": UPLOAD_LIMIT_BYTES,
            "within_limit": not over,
            "error": too_large(preflight.archive_size, UPLOAD_LIMIT_BYTES).to_body()["error"]
            if over
            else None,
            "warnings": preflight.plan.warnings,
            "problems": preflight.config.problems,
        }
    )


def describe_selection(selection: Selection, changes: list[CaptionChange]) -> dict[str, Any]:
    skipped = skipped_summary(selection.skipped)
    return {
        "folder": str(selection.folder),
        "files": len(selection.files),
        "images": selection.media_count,
        "bytes": selection.total_bytes,
        "skipped": [s | {"explanation": REASONS[s["reason"]]} for s in skipped["skipped"]],
        "skipped_count": skipped["skipped_count"],
        "skipped_reasons": skipped["skipped_reasons"],
        "archive_files": [{"path": f.path, "archive_name": f.arcname} for f in selection.files],
        "caption_changes": [describe_caption_change(change) for change in changes],
    }


def describe_caption_change(change: CaptionChange) -> dict[str, Any]:
    return {
        "path": change.path,
        "archive_name": change.archive_name,
        "caption": change.caption,
        "trainer_caption": change.trainer_caption,
        "changes": [{"code": code, "explanation": CHANGES[code]} for code in change.changes],
    }


def package_dataset(
    settings: Settings,
    reference: str,
    out: Path,
    progress: Progress | None = None,
    limit: int = UPLOAD_LIMIT_BYTES,
    merge_local: bool = False,
    rename_to_captions: bool = False,
) -> tuple[Preflight, ArchiveResult]:
    """Exactly the archive a job would upload, written to `out` (blocking; the CLI runs it directly)."""
    preflight = run_preflight(
        load_config(settings, reference),
        limit=limit,
        merge_local=merge_local,
        rename_to_captions=rename_to_captions,
    )
    if preflight.layout is None:
        raise remote_only()
    return preflight, build_archive(preflight.layout, out, progress)


async def build_dataset_archive(
    preflight: Preflight, out: Path, progress: Progress | None = None
) -> ArchiveResult:
    """The submit flow's packaging step, off the event loop."""
    if preflight.layout is None:
        raise remote_only()
    layout = preflight.layout
    return await anyio.to_thread.run_sync(lambda: build_archive(layout, out, progress))


def manifest_document(archive: ArchiveResult) -> dict[str, Any]:
    return {"sha256": archive.sha256, "size": archive.size, "files": manifest_as_json(archive)}


def install_example(settings: Settings, force: bool = False) -> tuple[Path, bool]:
    """Copy the shipped Flux LoRA example to `<configs_dir>/flux-lora-example/`. Returns (where, copied):
    an existing copy is left alone (the user may have edited it) unless `force`."""
    target = settings.effective_configs_dir / EXAMPLE_NAME
    if target.exists() and not force:
        return target, False
    source = resources.files("simpletuner_cloud") / "examples" / "flux-lora"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{EXAMPLE_NAME}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    with resources.as_file(source) as folder:
        shutil.copytree(folder, staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target, True


def remote_only() -> CloudError:
    return CloudError(
        "This config uses only remote datasets: nothing is uploaded, so there is no archive to package.",
        code="bad_request",
        hint="`simpletuner cloud data preview` shows what the trainer will read.",
    )
