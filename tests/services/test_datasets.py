"""Dataset services: packaging in a worker thread, upload once per sha256 (reuse while it lives),
delete after the job, against the sandbox on loopback and a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.files import get_file
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.services.datasets import (
    build_dataset_archive,
    delete_dataset_upload,
    install_example,
    load_config,
    package_dataset,
    upload_dataset,
)
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, Settings, load_settings
from simpletuner_cloud.store.database import Database
from tests.datasets.factory import write_environment
from tests.support.live_server import free_port, live_server


@pytest.fixture
def settings() -> Settings:
    return load_settings()


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


async def test_package_upload_reuse_and_delete(
    settings: Settings, database: Database, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    install_example(settings)
    preflight = run_preflight(load_config(settings, "flux-lora-example"))
    archive = await build_dataset_archive(preflight, tmp_path / "dataset.zip")
    progress: list[tuple[int, int]] = []
    first = await upload_dataset(
        database, http, tmp_path / "dataset.zip", archive, on_progress=lambda *p: progress.append(p)
    )
    assert not first.reused and progress[-1] == (archive.size, archive.size)
    assert (await get_file(http, first.file_id))["checksums"]["sha256"] == archive.sha256

    # Same bytes again (even rebuilt elsewhere): the live upload is reused, nothing is sent.
    _, again = package_dataset(settings, "flux-lora-example", tmp_path / "again.zip")
    assert again.sha256 == archive.sha256
    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    http.event_hooks["request"] = [record]
    second = await upload_dataset(database, http, tmp_path / "again.zip", again)
    assert (second.reused, second.upload_id, second.url) == (True, first.upload_id, first.url)
    assert requests == []

    # Close to expiry it is not reused: a job might start after Replicate dropped it.
    late = datetime.now(UTC) + timedelta(hours=23)
    third = await upload_dataset(database, http, tmp_path / "again.zip", again, now=late)
    assert not third.reused and third.file_id != first.file_id

    # After the job: deleted at Replicate, marked in the store, and never reused again.
    assert await delete_dataset_upload(database, http, first.upload_id) is True
    assert await delete_dataset_upload(database, http, first.upload_id) is False
    with pytest.raises(CloudError):
        await get_file(http, first.file_id)
    fourth = await upload_dataset(database, http, tmp_path / "again.zip", again)
    assert fourth.reused and fourth.upload_id == third.upload_id


def test_remote_only_configs_have_nothing_to_package(settings: Settings, tmp_path: Path) -> None:
    write_environment(
        settings.effective_configs_dir,
        "remote",
        datasets=[{"id": "h", "type": "huggingface", "dataset_name": "a/b"}],
    )
    with pytest.raises(CloudError) as caught:
        package_dataset(settings, "remote", tmp_path / "x.zip")
    assert "only remote datasets" in caught.value.message


def test_package_refuses_an_oversized_archive(settings: Settings, tmp_path: Path) -> None:
    write_environment(settings.effective_configs_dir, "env")
    with pytest.raises(CloudError) as caught:
        package_dataset(settings, "env", tmp_path / "x.zip", limit=100)
    assert caught.value.code == "upload_too_large"
    assert not (tmp_path / "x.zip").exists()
