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
    (configs_dir / "good" / ".metadata.json").write_text('{"description": "my plushie"}')
    response = await client.get("/api/cloud/configs")
    assert (response.status_code, response.json()) == (
        200,
        {
            "configs_dir": str(configs_dir),
            "configs": [
                {"name": "good", "path": str(configs_dir / "good"), "model_family": "flux",
                 "model_type": "lora", "description": "my plushie", "datasets": 1, "problems": []},
                {"name": "no-family", "path": str(configs_dir / "no-family"), "model_family": None,
                 "model_type": "lora", "description": None, "datasets": 1,
                 "problems": ["config.json does not set model_family."]},
            ],
        },
    )  # fmt: skip


async def test_the_configs_folder_comes_from_simpletuner_configs_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simpletuner_cloud.api.app import create_app
    from simpletuner_cloud.settings import load_settings

    monkeypatch.setenv("SIMPLETUNER_CONFIGS_DIR", str(tmp_path / "elsewhere"))
    write_environment(tmp_path / "elsewhere", "env")
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            body = (await http.get("/api/cloud/configs")).json()
    assert (body["configs_dir"], [c["name"] for c in body["configs"]]) == (
        str(tmp_path / "elsewhere"),
        ["env"],
    )


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


async def test_problems_are_listed_with_the_parsed_config(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    folder = write_environment(configs_dir, "env", options={"data_backend_config": "nowhere/datasets.json"})
    (folder / "multidatabackend.json").unlink()
    response = await client.get("/api/cloud/configs/env")
    options = json.loads((folder / "config.json").read_text())
    assert (response.status_code, response.json()) == (
        200,
        {
            "name": "env",
            "source": "environment",
            "config_path": str(folder / "config.json"),
            "dataloader_path": None,
            "config": options,
            "datasets": [],
            "lycoris": None,
            "problems": ["data_backend_config `nowhere/datasets.json` was not found."],
        },
    )


async def test_unknown_config_is_404_config_missing(client: httpx.AsyncClient, configs_dir: Path) -> None:
    response = await client.get("/api/cloud/configs/missing")
    assert (response.status_code, response.json()) == (
        404,
        {
            "error": {
                "code": "config_missing",
                "message": f"No environment or config named `missing` (looked in {configs_dir} and as a "
                "path).",
                "hint": "Run `simpletuner examples install` for the example, set SIMPLETUNER_CONFIGS_DIR, or "
                "give a path to a folder holding config.json. Only JSON configs are read (config.json + "
                "multidatabackend.json); TOML and .env are not.",
            }
        },
    )


async def test_broken_config_is_422_config_invalid(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env")
    (folder / "config.json").write_text("{nope")
    response = await client.get("/api/cloud/configs/env")
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "config_invalid",
                "message": f"{folder / 'config.json'} is not valid JSON (line 1, column 2).",
                "hint": "Only JSON configs are read (config.json + multidatabackend.json); TOML and .env "
                "are not.",
            }
        },
    )


async def test_a_name_that_is_not_an_environment_name_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/configs/a%20b")
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "config_invalid",
                "message": "`a b` is not an environment name.",
                "hint": "Environment names use letters, digits, `.`, `_` and `-`.",
            }
        },
    )
