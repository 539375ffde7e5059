"""`GET /api/cloud/configs` and `/configs/{name}`: whole JSON bodies, problems listed, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.datasets.factory import local_entry, write_environment


@pytest.fixture
def configs_dir(state_root: Path) -> Path:
    return state_root / "configs"


async def test_empty_configs_folder(client: httpx.AsyncClient, configs_dir: Path) -> None:
    response = await client.get("/api/cloud/configs")
    assert response.status_code == 200
    assert response.json() == {"configs_dir": str(configs_dir), "configs": []}


async def test_lists_environments_with_their_problems(client: httpx.AsyncClient, configs_dir: Path) -> None:
    write_environment(configs_dir, "good")
    write_environment(configs_dir, "no-family", options={"model_family": None})
    response = await client.get("/api/cloud/configs")
    assert response.json()["configs"] == [
        {"name": "good", "path": str(configs_dir / "good"), "model_family": "flux", "model_type": "lora",
         "description": None, "datasets": 1, "problems": []},
        {"name": "no-family", "path": str(configs_dir / "no-family"), "model_family": None,
         "model_type": "lora", "description": None, "datasets": 1,
         "problems": ["config.json does not set model_family."]},
    ]  # fmt: skip


async def test_one_config_parsed_with_secrets_redacted(client: httpx.AsyncClient, configs_dir: Path) -> None:
    aws = {"id": "s3", "type": "aws", "aws_bucket_name": "b", "aws_secret_access_key": "sk-live"}
    folder = write_environment(
        configs_dir, "env", datasets=[local_entry(), aws], options={"--hub_token": "hf_x"}
    )
    response = await client.get("/api/cloud/configs/env")
    assert response.status_code == 200
    body = response.json()
    options = json.loads((folder / "config.json").read_text())
    assert body == {
        "name": "env",
        "source": "environment",
        "config_path": str(folder / "config.json"),
        "dataloader_path": str(folder / "multidatabackend.json"),
        "config": {**{k.lstrip("-"): v for k, v in options.items()}, "hub_token": "<redacted>"},
        "datasets": [local_entry(), {**aws, "aws_secret_access_key": "<redacted>"}],
        "lycoris": None,
        "problems": [],
    }


async def test_unknown_config_is_404_with_a_hint(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/configs/missing")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "config_missing" and "simpletuner examples install" in error["hint"]


async def test_broken_config_is_422(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env")
    (folder / "config.json").write_text("{nope")
    response = await client.get("/api/cloud/configs/env")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "config_invalid")
