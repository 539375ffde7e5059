"""`/v1/files` over real loopback HTTP against the sandbox: streamed upload with an exact Content-Length
and byte progress, get/list/delete, reuse checks, error mapping, and the sandbox trainer reading the
archive we built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simpletuner_cloud.datasets.archive import ArchiveResult, build_archive
from simpletuner_cloud.datasets.environments import load_path
from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate import files
from simpletuner_cloud.replicate.files import delete_file, get_file, is_reusable, list_files, upload_file
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN
from simpletuner_cloud.trainer.inputs import HubDestination, JobSpec, build_trainer_inputs
from simpletuner_cloud.trainer.schema import check_trainer_inputs
from tests.support.live_server import free_port, live_server
from tests.support.waiting import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "simpletuner_cloud" / "examples" / "flux-lora"


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = SandboxConfig(
        public_base_url=f"http://127.0.0.1:{port}",
        step_seconds=0.01,
        boot_seconds=0.0,
        max_simulated_steps=3,
        data_dir=tmp_path / "sandbox",
        file_size_limit=200_000,
    )
    with live_server(create_sandbox_app(config), port=port) as url:
        yield url


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers, trust_env=False) as client:
        yield client


@pytest.fixture
def example_archive(tmp_path: Path) -> tuple[Path, ArchiveResult, JobSpec]:
    config = load_path(EXAMPLE, tmp_path)
    preflight = run_preflight(config)
    assert preflight.layout is not None
    out = tmp_path / "dataset.zip"
    result = build_archive(preflight.layout, out)
    spec = JobSpec(config, preflight.plan, HubDestination("me/plushie-lora", "hf_test_token"))
    return out, result, spec


async def test_upload_streams_with_exact_length_and_progress(
    http: httpx.AsyncClient, example_archive: tuple[Path, ArchiveResult, JobSpec]
) -> None:
    path, archive, _ = example_archive
    sent_headers: list[httpx.Headers] = []

    async def capture(request: httpx.Request) -> None:
        sent_headers.append(request.headers)

    http.event_hooks["request"] = [capture]
    progress: list[tuple[int, int]] = []
    uploaded = await upload_file(
        http,
        path,
        filename="dataset.zip",
        metadata={"sha256": archive.sha256},
        on_progress=lambda *p: progress.append(p),
    )
    assert uploaded["checksums"]["sha256"] == archive.sha256
    assert (uploaded["size"], uploaded["name"], uploaded["content_type"]) == (
        archive.size,
        "dataset.zip",
        "application/zip",
    )
    assert uploaded["metadata"] == {"sha256": archive.sha256}
    assert progress[-1] == (archive.size, archive.size)
    assert "transfer-encoding" not in sent_headers[0]
    assert int(sent_headers[0]["content-length"]) > archive.size


async def test_progress_counts_the_bytes_sent_chunk_by_chunk(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "CHUNK", 50_000)  # the sandbox here refuses files over 200 kB
    path = tmp_path / "three.zip"
    path.write_bytes(b"\0" * 120_000)
    progress: list[tuple[int, int]] = []
    uploaded = await upload_file(http, path, filename="three.zip", on_progress=lambda *p: progress.append(p))
    assert progress == [(50_000, 120_000), (100_000, 120_000), (120_000, 120_000)]
    assert uploaded["size"] == 120_000


async def test_get_list_reuse_and_delete(
    http: httpx.AsyncClient, example_archive: tuple[Path, ArchiveResult, JobSpec]
) -> None:
    path, archive, _ = example_archive
    uploaded = await upload_file(http, path, filename="dataset.zip")
    assert (await get_file(http, uploaded["id"]))["id"] == uploaded["id"]
    assert uploaded["id"] in [f["id"] for f in await list_files(http)]
    now = datetime.now(UTC)
    assert is_reusable(uploaded, archive.sha256, now, timedelta(hours=1))
    assert not is_reusable(uploaded, "0" * 64, now, timedelta(hours=1))
    assert not is_reusable(uploaded, archive.sha256, now + timedelta(days=2), timedelta(hours=1))
    assert await delete_file(http, uploaded["id"]) is True
    assert await delete_file(http, uploaded["id"]) is False
    with pytest.raises(CloudError) as caught:
        await get_file(http, uploaded["id"])
    assert caught.value.code == "provider_not_found"


async def test_errors_are_mapped(http: httpx.AsyncClient, sandbox_url: str, tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    big.write_bytes(b"\0" * 300_000)
    with pytest.raises(CloudError) as caught:
        await upload_file(http, big, filename="big.zip")
    assert caught.value.code == "upload_too_large"
    async with httpx.AsyncClient(base_url=sandbox_url, headers={"Authorization": "Bearer r8_wrong"}) as bad:
        with pytest.raises(CloudError) as caught:
            await upload_file(bad, big, filename="big.zip")
    assert caught.value.code == "token_invalid"


async def test_the_sandbox_trainer_reads_the_uploaded_archive(
    http: httpx.AsyncClient, example_archive: tuple[Path, ArchiveResult, JobSpec]
) -> None:
    path, _, spec = example_archive
    uploaded = await upload_file(http, path, filename="dataset.zip")
    model = (await http.get("/v1/models/simpletuner/advanced-trainer")).json()
    version = model["latest_version"]
    inputs = build_trainer_inputs(JobSpec(spec.config, spec.plan, spec.destination, uploaded["urls"]["get"]))
    check_trainer_inputs(inputs, version["openapi_schema"])
    created = await http.post("/v1/predictions", json={"version": version["id"], "input": inputs})
    assert created.status_code == 201, created.text
    prediction = await wait_for(http, created.json()["id"])
    assert prediction["status"] == "succeeded", prediction.get("error") or prediction.get("logs")
    assert "Num batches = 12" in (prediction.get("logs") or "")  # it staged all twelve images


async def wait_for(http: httpx.AsyncClient, prediction_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/v1/predictions/{prediction_id}")).json()
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    return await eventually(finished, what=f"prediction {prediction_id} finishing")


async def test_delete_is_idempotent_through_the_provider_client(sandbox_url: str, tmp_path: Path) -> None:
    from simpletuner_cloud.replicate.client import ReplicateClient

    path = tmp_path / "one.zip"
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    async with ReplicateClient(base_url=sandbox_url, token=DEFAULT_SANDBOX_TOKEN) as client:
        uploaded = await upload_file(client.http, path, filename="one.zip")
        assert await delete_file(client.http, uploaded["id"]) is True
        assert await delete_file(client.http, uploaded["id"]) is False
