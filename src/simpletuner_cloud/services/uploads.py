"""Dataset uploads through the server. Before a byte leaves: preflight, data consent and the chosen
trainer version's inputs. Then a background task packages the archive in a worker thread and streams it
to Replicate's `/v1/files` once per sha256 (a live upload of the same bytes is reused), publishing byte
progress that the API relays as Server-Sent Events. `delete_dataset_upload` is the clean-up after a job;
`stop_uploads` and `remove_leftover_archives` are the server's shutdown and start-up halves."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.datasets.archive import ArchiveResult
from simpletuner_cloud.datasets.preflight import Preflight, run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate import files
from simpletuner_cloud.replicate.client import ReplicateClient
from simpletuner_cloud.security.files import make_private_dir
from simpletuner_cloud.services.consent import check_consent
from simpletuner_cloud.services.datasets import build_dataset_archive, load_config, remote_only
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.provider import ProviderRuntime
from simpletuner_cloud.services.provider_settings import ReplicateSettings, load_replicate_settings
from simpletuner_cloud.services.upload_tasks import DatasetUploadResponse, UploadTask, UploadTasks
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.jobs import link_upload
from simpletuner_cloud.store.uploads import (
    find_reusable_upload,
    get_upload,
    mark_upload_deleted,
    record_upload,
)
from simpletuner_cloud.trainer.inputs import JobSpec, dataset_inputs
from simpletuner_cloud.trainer.schema import check_trainer_inputs

log = logging.getLogger(__name__)
REUSE_MARGIN = timedelta(hours=2)  # a reused upload must outlive queueing and the trainer's download
PENDING_ARCHIVE_URL = "https://api.replicate.com/v1/files/pending"  # stands in for `images` when checking
# Imported with the app, before it serves: archives last modified before this are leftovers.
PROCESS_STARTED = time.time()


def server_stopping() -> CloudError:
    return CloudError(
        "The server stopped before this dataset upload finished.",
        code="server_stopping",
        hint="Run the upload again once the server is back; if the archive already reached Replicate, it "
        "is reused rather than sent again.",
    )


SERVER_STOPPING = server_stopping().to_body()["error"]  # the state a stopped upload is left in


@dataclass(frozen=True)
class UploadedDataset:
    upload_id: str
    file_id: str
    url: str
    reused: bool
    expires_at: datetime | None


async def start_dataset_upload(
    session: AsyncSession,
    settings: Settings,
    database: Database,
    runtime: ProviderRuntime,
    tasks: UploadTasks,
    *,
    reference: str | None = None,
    config_json: Any = None,
    dataloader_json: Any = None,
    consent: bool = False,
    merge_local: bool = False,
    rename_to_captions: bool = False,
) -> DatasetUploadResponse:
    """Refuse now what would fail (dataset errors, several local sets without `merge_local`, textfile
    captions that differ from the names without `rename_to_captions`, size, consent, trainer inputs),
    then start packaging and uploading in the background. Returns the task's first snapshot."""
    preflight = await anyio.to_thread.run_sync(  # reading configs and walking folders: one thread hop
        lambda: run_preflight(
            load_config(settings, reference, config_json, dataloader_json),
            merge_local=merge_local,
            rename_to_captions=rename_to_captions,
        )
    )
    config = preflight.config
    if not preflight.needs_upload:
        raise remote_only()
    replicate = await load_replicate_settings(session, settings)
    check_consent(replicate.data_consent, consent, needs_upload=True)
    async with runtime.client(settings, replicate) as client:
        await check_trainer_version(client, settings, replicate, preflight)
    task = tasks.create(
        config.name,
        preflight.archive_size,
        sum(len(s.files) for s in preflight.selections),
        warnings=list(preflight.plan.warnings),  # e.g. what a merge of several datasets loses
    )
    tasks.run(task, _package_and_upload(task, tasks, preflight, settings, database, runtime, replicate))
    return DatasetUploadResponse.of(task)


async def check_trainer_version(
    client: ReplicateClient, settings: Settings, replicate: ReplicateSettings, preflight: Preflight
) -> None:
    """The inputs this dataset implies (`config_json`, `images`, `lycoris_config`, ...) against the chosen
    version's `openapi_schema`: `trainer_input_unknown` names an input the version does not declare."""
    model = replicate.trainer_model(load_hardware_catalogue(settings))
    if replicate.version:
        version = await client.get_version(model, replicate.version)
    else:
        version = (await client.get_model(model)).get("latest_version") or {}
    spec = JobSpec(preflight.config, preflight.plan, None, archive_url=PENDING_ARCHIVE_URL)
    check_trainer_inputs(dataset_inputs(spec), version.get("openapi_schema") or {})


async def upload_events(tasks: UploadTasks, task_id: str) -> AsyncIterator[dict[str, Any]]:
    """SSE events of one task, whichever server runs it (raises `upload_not_found` now, before the
    stream starts)."""
    return (await tasks.find(task_id)).events()


async def get_upload_task(tasks: UploadTasks, task_id: str) -> DatasetUploadResponse:
    return DatasetUploadResponse.of(await tasks.find(task_id))


async def _package_and_upload(
    task: UploadTask,
    tasks: UploadTasks,
    preflight: Preflight,
    settings: Settings,
    database: Database,
    runtime: ProviderRuntime,
    replicate: ReplicateSettings,
) -> None:
    loop = asyncio.get_running_loop()
    path = uploads_dir(settings) / f"{task.id}.zip"

    def packaging(done: int, total: int) -> None:  # called on the packaging thread
        if task.finished:  # stopped by `stop_uploads`: end the thread too, not only the coroutine
            raise server_stopping()
        loop.call_soon_threadsafe(task.progress, "packaging", done, total)

    try:
        make_private_dir(path.parent)  # 0700: the archive holds the user's images
        archive = await build_dataset_archive(preflight, path, packaging)
        task.progress("uploading", 0, archive.size)
        async with tasks.lock(archive.sha256), runtime.client(settings, replicate) as client:
            uploaded = await upload_dataset(
                database,
                client.http,
                path,
                archive,
                on_progress=lambda done, total: task.progress("uploading", done, total),
            )
        expires = uploaded.expires_at.isoformat() if uploaded.expires_at else None
        task.succeed(
            {"upload_id": uploaded.upload_id, "file_id": uploaded.file_id, "url": uploaded.url,
             "sha256": archive.sha256, "size": archive.size, "files": len(archive.manifest),
             "reused": uploaded.reused, "expires_at": expires}
        )  # fmt: skip
    except CloudError as exc:
        task.fail(exc.to_body()["error"])
    except Exception:
        log.exception("dataset upload %s failed", task.id)
        unexpected = CloudError(
            "The upload failed unexpectedly; nothing was kept.",
            code="internal_error",
            hint="See the server log for details and report it if it happens again.",
        )
        task.fail(unexpected.to_body()["error"])
    finally:
        path.unlink(missing_ok=True)


async def upload_dataset(
    database: Database,
    http: httpx.AsyncClient,
    archive_path: Path,
    archive: ArchiveResult,
    *,
    now: datetime | None = None,
    on_progress: files.Progress | None = None,
    job_id: str | None = None,
) -> UploadedDataset:
    """Reuse a live upload of the same bytes (confirmed at Replicate: same sha256, not expiring within
    REUSE_MARGIN), else stream the archive to `/v1/files` and record it. With `job_id` the upload is
    linked to that job as it is recorded, whatever the job's status: a job canceled while its bytes
    were on the way must still find (and delete) the file in its clean-up."""
    now = now or datetime.now(UTC)
    async with database.session() as session:
        existing = await find_reusable_upload(session, archive.sha256, now, REUSE_MARGIN.total_seconds())
        if existing is not None and existing.replicate_file_id and existing.url:
            try:
                held = await files.get_file(http, existing.replicate_file_id)
            except CloudError as exc:
                if exc.code != "provider_not_found":
                    raise
                held = {}
            if files.is_reusable(held, archive.sha256, now, REUSE_MARGIN):
                if on_progress:
                    on_progress(archive.size, archive.size)
                expires = files.parse_time(held.get("expires_at")) or existing.expires_at
                if job_id is not None:
                    await link_upload(session, job_id, existing.id)
                    await session.commit()
                return UploadedDataset(existing.id, existing.replicate_file_id, existing.url, True, expires)
            await mark_upload_deleted(session, existing.id)  # gone or changed at Replicate: never again
            await session.commit()
    metadata = {"sha256": archive.sha256, "files": len(archive.manifest), "source": "simpletuner-cloud"}
    uploaded = await files.upload_file(
        http,
        archive_path,
        filename=f"dataset-{archive.sha256[:16]}.zip",
        metadata=metadata,
        on_progress=on_progress,
    )
    url = str(uploaded.get("urls", {}).get("get") or "")
    expires_at = files.parse_time(uploaded.get("expires_at"))
    async with database.session() as session:
        row = await record_upload(
            session,
            sha256=archive.sha256,
            size=archive.size,
            replicate_file_id=str(uploaded["id"]),
            url=url,
            expires_at=expires_at,
            metadata={"manifest_files": len(archive.manifest), "file": uploaded.get("name")},
        )
        if job_id is not None:
            await link_upload(session, job_id, row.id)
        await session.commit()
        return UploadedDataset(row.id, str(uploaded["id"]), url, False, expires_at)


async def delete_dataset_upload(database: Database, http: httpx.AsyncClient, upload_id: str) -> bool:
    """After the job ends: delete the file at Replicate and mark the upload gone. Idempotent."""
    async with database.session() as session:
        row = await get_upload(session, upload_id)
        if row is None or row.deleted_at is not None:
            return False
        if row.replicate_file_id:
            await files.delete_file(http, row.replicate_file_id)
        marked = await mark_upload_deleted(session, upload_id)
        await session.commit()
        return marked


def uploads_dir(settings: Settings) -> Path:
    """Where archives wait while they are uploaded (deleted after each upload, whatever the outcome)."""
    return settings.cloud_dir / "uploads"


async def stop_uploads(tasks: UploadTasks, drain_seconds: float) -> None:
    """The server's shutdown: wait up to `drain_seconds` for running uploads, then cancel the rest and
    mark them failed (`server_stopping`), so any listener gets a final event saying to run it again."""
    stopped = await tasks.stop(drain_seconds, SERVER_STOPPING)
    if stopped:
        log.warning("stopped %d dataset upload(s) still running at shutdown", len(stopped))


def remove_leftover_archives(settings: Settings, before: float | None = None) -> int:
    """The server's start-up: delete the archives (`*.zip`, `*.partial`) a crashed or killed server left
    in the uploads folder, those last modified before `before` (default: this process's start). At
    start-up no upload of ours runs, so that is all of them; the cutoff spares an archive that a second
    server sharing this state root is writing. Returns how many were removed."""
    cutoff = PROCESS_STARTED if before is None else before
    removed = failed = 0
    try:
        entries = list(uploads_dir(settings).iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith((".zip", ".partial")):
            continue
        try:
            info = entry.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
                continue
            entry.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError:
            failed += 1
    if removed:
        log.info("removed %d leftover dataset archive(s) from an earlier run", removed)
    if failed:
        log.warning("could not remove %d leftover dataset archive(s) in the uploads folder", failed)
    return removed
