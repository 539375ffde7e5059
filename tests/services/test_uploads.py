"""Uploading a dataset archive once per sha256: reuse while Replicate still holds it (checked there),
delete after the job; against the sandbox on loopback and a real SQLite store. Then the server's
shutdown (running uploads drained or stopped) and start-up (leftover archives removed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from simpletuner_cloud.datasets.archive import ArchiveResult
from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.files import delete_file, get_file
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.services import uploads
from simpletuner_cloud.services.datasets import build_dataset_archive, install_example, load_config
from simpletuner_cloud.services.upload_tasks import UploadTask, UploadTasks
from simpletuner_cloud.services.uploads import (
    SERVER_STOPPING,
    delete_dataset_upload,
    remove_leftover_archives,
    stop_uploads,
    upload_dataset,
    uploads_dir,
)
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, Settings, load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.uploads import get_upload
from tests.support.live_server import free_port, live_server
from tests.support.waiting import eventually


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await db.migrate()
    yield db
    await db.dispose()


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = SandboxConfig(public_base_url=f"http://127.0.0.1:{port}", data_dir=tmp_path / "sandbox")
    with live_server(create_sandbox_app(config), port=port) as url:
        yield url


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers, trust_env=False) as client:
        yield client


@pytest.fixture
async def archive(tmp_path: Path) -> tuple[Path, ArchiveResult]:
    settings = load_settings()
    install_example(settings)
    preflight = run_preflight(load_config(settings, "flux-lora-example"))
    return tmp_path / "dataset.zip", await build_dataset_archive(preflight, tmp_path / "dataset.zip")


def record_requests(http: httpx.AsyncClient) -> list[str]:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    http.event_hooks["request"] = [record]
    return seen


async def test_upload_reuse_and_delete(
    database: Database, http: httpx.AsyncClient, archive: tuple[Path, ArchiveResult]
) -> None:
    path, built = archive
    progress: list[tuple[int, int]] = []
    first = await upload_dataset(database, http, path, built, on_progress=lambda *p: progress.append(p))
    assert not first.reused and progress[-1] == (built.size, built.size)
    held = await get_file(http, first.file_id)
    assert (held["checksums"]["sha256"], held["size"]) == (built.sha256, built.size)

    # Same bytes again: Replicate is asked whether it still holds them, nothing is sent.
    requests = record_requests(http)
    second = await upload_dataset(database, http, path, built)
    assert (second.reused, second.upload_id, second.url) == (True, first.upload_id, first.url)
    assert requests == [f"GET /v1/files/{first.file_id}"]

    # Close to expiry it is not reused: a job might start after Replicate dropped it.
    late = datetime.now(UTC) + timedelta(hours=23)
    third = await upload_dataset(database, http, path, built, now=late)
    assert not third.reused and third.file_id != first.file_id

    # After the job: deleted at Replicate, marked in the store, and never reused again.
    assert await delete_dataset_upload(database, http, first.upload_id) is True
    assert await delete_dataset_upload(database, http, first.upload_id) is False
    with pytest.raises(CloudError) as caught:
        await get_file(http, first.file_id)
    assert caught.value.code == "provider_not_found"
    fourth = await upload_dataset(database, http, path, built)
    assert fourth.reused and fourth.upload_id == third.upload_id


async def test_an_upload_gone_at_replicate_is_uploaded_again(
    database: Database, http: httpx.AsyncClient, archive: tuple[Path, ArchiveResult]
) -> None:
    path, built = archive
    first = await upload_dataset(database, http, path, built)
    await delete_file(http, first.file_id)  # say, deleted from Replicate's dashboard
    second = await upload_dataset(database, http, path, built)
    assert not second.reused and second.file_id != first.file_id
    assert (await get_file(http, second.file_id))["checksums"]["sha256"] == built.sha256
    async with database.session() as session:
        stale = await get_upload(session, first.upload_id)
        assert stale is not None and stale.deleted_at is not None


async def test_deleting_an_unknown_upload_is_a_no_op(database: Database, http: httpx.AsyncClient) -> None:
    requests = record_requests(http)
    assert await delete_dataset_upload(database, http, "upl_unknown") is False
    assert requests == []


# Shutdown: `stop_uploads` drains what finishes in time and stops the rest.


class FakeRuntime:
    """Stands in for the provider runtime: `upload_dataset` is replaced, so no client is used."""

    @contextlib.asynccontextmanager
    async def client(self, *args: Any) -> AsyncIterator[Any]:
        yield SimpleNamespace(http=None)


def start_upload(tasks: UploadTasks, settings: Settings) -> UploadTask:
    install_example(settings)
    preflight = run_preflight(load_config(settings, "flux-lora-example"))
    task = tasks.create("flux-lora-example", preflight.archive_size, 24)
    work = uploads._package_and_upload(
        task, tasks, preflight, settings, cast(Any, None), cast(Any, FakeRuntime()), cast(Any, None)
    )
    tasks.run(task, work)
    return task


async def test_stop_uploads_awaits_an_upload_that_finishes_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, tasks, release = load_settings(), UploadTasks(), asyncio.Event()

    async def slow_upload(database: Any, http: Any, path: Path, archive: ArchiveResult, **_: Any) -> Any:
        await release.wait()
        return uploads.UploadedDataset("upl_1", "file_1", "https://files/1", False, None)

    monkeypatch.setattr(uploads, "upload_dataset", slow_upload)
    task = start_upload(tasks, settings)
    stopping = asyncio.create_task(stop_uploads(tasks, drain_seconds=3600))
    # The packaging thread reports back through the loop.
    await eventually(lambda: task.state == "uploading", what="the upload reaching `uploading`")
    assert not stopping.done()
    release.set()
    await stopping
    assert (task.state, task.result and task.result["upload_id"]) == ("succeeded", "upl_1")
    assert list(uploads_dir(settings).iterdir()) == []


async def test_stop_uploads_cancels_a_hanging_upload_and_reports_it_failed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, tasks, sending = load_settings(), UploadTasks(), asyncio.Event()

    async def hanging_upload(database: Any, http: Any, path: Path, archive: ArchiveResult, **_: Any) -> Any:
        sending.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(uploads, "upload_dataset", hanging_upload)
    task = start_upload(tasks, settings)
    await sending.wait()
    assert [p.name for p in uploads_dir(settings).iterdir()] == [f"{task.id}.zip"]
    with caplog.at_level(logging.WARNING, logger=uploads.__name__):
        await stop_uploads(tasks, drain_seconds=0)
    assert task.snapshot()["state"] == "failed"
    assert task.snapshot()["error"] == {
        "code": "server_stopping",
        "message": "The server stopped before this dataset upload finished.",
        "hint": "Run the upload again once the server is back; if the archive already reached Replicate, "
        "it is reused rather than sent again.",
    }
    assert list(uploads_dir(settings).iterdir()) == []  # the cancelled upload removed its archive
    assert caplog.messages == ["stopped 1 dataset upload(s) still running at shutdown"]


async def test_a_stopped_upload_stops_packaging_too(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, tasks, sent = load_settings(), UploadTasks(), []

    async def record(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)

    monkeypatch.setattr(uploads, "upload_dataset", record)
    install_example(settings)
    preflight = run_preflight(load_config(settings, "flux-lora-example"))
    task = tasks.create("flux-lora-example", preflight.archive_size, 24)
    task.fail(SERVER_STOPPING)  # as `stop_uploads` leaves it while the packaging thread still runs
    await uploads._package_and_upload(
        task, tasks, preflight, settings, cast(Any, None), cast(Any, FakeRuntime()), cast(Any, None)
    )
    assert (sent, task.error, list(uploads_dir(settings).iterdir())) == ([], SERVER_STOPPING, [])


# Start-up: archives a crashed server left behind are removed.


def test_leftover_archives_from_before_the_start_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings()
    folder = uploads_dir(settings)
    folder.mkdir(parents=True)
    start = 1_700_000_000.0
    files = {"dsu_old.zip": start - 60, ".dsu_old.zip.partial": start - 1, "dsu_new.zip": start + 1,
             "notes.txt": start - 60}  # fmt: skip
    for name, mtime in files.items():
        (folder / name).write_bytes(b"PK")
        os.utime(folder / name, (mtime, mtime))
    (folder / "folder.zip").mkdir()
    outside = tmp_path / "keep.zip"
    outside.write_bytes(b"PK")
    os.utime(outside, (start - 60, start - 60))
    (folder / "link.zip").symlink_to(outside)
    with caplog.at_level(logging.INFO, logger=uploads.__name__):
        assert remove_leftover_archives(settings, before=start) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["dsu_new.zip", "folder.zip", "link.zip", "notes.txt"]
    assert outside.exists()
    assert caplog.messages == ["removed 2 leftover dataset archive(s) from an earlier run"]


def test_by_default_the_cutoff_is_this_process_start() -> None:
    settings = load_settings()
    folder = uploads_dir(settings)
    folder.mkdir(parents=True)
    for name, mtime in (
        ("dsu_crashed.zip", uploads.PROCESS_STARTED - 1),
        ("dsu_now.zip", uploads.PROCESS_STARTED + 1),
    ):
        (folder / name).write_bytes(b"PK")
        os.utime(folder / name, (mtime, mtime))
    assert remove_leftover_archives(settings) == 1
    assert [p.name for p in folder.iterdir()] == ["dsu_now.zip"]


def test_no_uploads_folder_means_nothing_to_remove(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=uploads.__name__):
        assert remove_leftover_archives(load_settings()) == 0
    assert caplog.messages == []
