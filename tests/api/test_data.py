"""`POST /api/cloud/data-consent/preview`: per-dataset files, bytes and skipped files, archive size and
limit, for named environments and inline JSON; refusals keep their codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.preflight import run_preflight
from tests.datasets.factory import local_entry, write_environment, write_image

PREVIEW = "/api/cloud/data-consent/preview"


@pytest.fixture
def configs_dir(state_root: Path) -> Path:
    return state_root / "configs"


async def preview(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(PREVIEW, json=body)


async def test_preview_of_a_named_environment(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", images=2)
    (folder / "data" / ".env").write_text("HF_TOKEN=hf_x")
    response = await preview(client, {"config": "env"})
    assert response.status_code == 200, response.text
    size = run_preflight(load_environment("env", configs_dir)).archive_size
    data = folder / "data"
    assert response.json() == {
        "config": "env",
        "mode": "upload",
        "needs_upload": True,
        "datasets": [
            {
                "id": "plushie", "action": "upload", "reason": "local images, sent as the `images` archive",
                "folder": str(data), "files": 4, "images": 2,
                "bytes": sum(p.stat().st_size for p in data.iterdir() if p.name != ".env"),
                "skipped": [{"path": ".env", "reason": "secret",
                             "explanation": "looks like a secret (.env, key or certificate)"}],
            }
        ],
        "archive_bytes": size,
        "limit_bytes": 104_857_600,
        "within_limit": True,
        "error": None,
        "warnings": [],
        "problems": [],
    }  # fmt: skip


async def test_inline_remote_preview_needs_no_upload(client: httpx.AsyncClient) -> None:
    body = {
        "config_json": {"model_family": "flux"},
        "dataloader_json": [{"id": "hub", "type": "huggingface", "dataset_name": "me/set"}],
    }
    response = await preview(client, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["mode"], result["needs_upload"], result["archive_bytes"]) == ("remote", False, 0)
    assert result["datasets"] == [
        {"id": "hub", "action": "remote", "reason": "Hugging Face dataset, read by the trainer",
         "folder": None, "files": None, "images": None, "bytes": None, "skipped": []}
    ]  # fmt: skip


async def test_an_oversized_archive_is_shown_with_the_error(
    client: httpx.AsyncClient, configs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simpletuner_cloud.services import datasets

    monkeypatch.setattr(datasets, "UPLOAD_LIMIT_BYTES", 5000)
    folder = write_environment(configs_dir, "env")
    write_image(folder / "data" / "big.jpg", 6000)
    result = (await preview(client, {"config": "env"})).json()
    assert result["within_limit"] is False and result["limit_bytes"] == 5000
    assert result["error"]["code"] == "upload_too_large"
    assert f"{result['archive_bytes']:,} bytes" in result["error"]["message"]


@pytest.mark.parametrize(
    ("datasets", "code", "status"),
    [
        ([local_entry(caption_strategy="instanceprompt")], "dataset_unsupported", 422),
        ([local_entry(folder="gone")], "dataset_missing", 422),
    ],
)
async def test_refusals_keep_their_codes(
    client: httpx.AsyncClient, configs_dir: Path, datasets: list[dict[str, Any]], code: str, status: int
) -> None:
    write_environment(configs_dir, "env", datasets=datasets)
    response = await preview(client, {"config": "env"})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


async def test_empty_dataset_is_dataset_empty(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", images=0)
    (folder / "data").mkdir()
    response = await preview(client, {"config": "env"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "dataset_empty")


@pytest.mark.parametrize(
    "body", [{}, {"config": "env", "config_json": {}}, {"config_json": {"model_family": "flux"}}]
)
async def test_the_request_names_one_source(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await preview(client, body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


async def test_remote_peers_need_the_admin_token(app: Any, configs_dir: Path) -> None:
    from tests.api.conftest import remote_client

    write_environment(configs_dir, "env")
    async with remote_client(app) as remote:
        assert (await remote.post(PREVIEW, json={"config": "env"})).status_code == 401
        assert (await remote.get("/api/cloud/configs")).status_code == 401
