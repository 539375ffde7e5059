"""Uploading a dataset archive once per sha256: reuse while Replicate still holds it (checked there),
delete after the job; against the sandbox on loopback and a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from simpletuner_cloud.datasets.archive import ArchiveResult
from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.files import delete_file, get_file
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.services.datasets import build_dataset_archive, install_example, load_config
from simpletuner_cloud.services.uploads import delete_dataset_upload, upload_dataset
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.uploads import get_upload
from tests.support.live_server import free_port, live_server


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
    assert caught.value.code == "not_found"
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
