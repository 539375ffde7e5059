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


REPLICATE = "r8_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


async def test_token_shaped_values_and_the_lycoris_block_are_redacted_under_any_key(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    aws = {"id": "s3", "type": "aws", "aws_bucket_name": "b", "keys": [AWS_ID, "ok"], "MySecret": AWS_SECRET}
    options = {"lora_type": "lycoris", "notes": f"ask for {REPLICATE}", "base": {"hub": HF}}
    folder = write_environment(configs_dir, "env", datasets=[aws], options=options)
    lycoris = {"algo": "lokr", "factor": 16, "api_token": "plain-secret", "comment": HF}
    (folder / "lycoris_config.json").write_text(json.dumps(lycoris))
    body = (await client.get("/api/cloud/configs/env")).json()
    assert body["config"] | {"lora_type": "lycoris"} == {
        **{k.lstrip("-"): v for k, v in json.loads((folder / "config.json").read_text()).items()},
        "notes": "<redacted>",
        "base": {"hub": "<redacted>"},
    }
    assert body["datasets"] == [{**aws, "keys": ["<redacted>", "ok"], "MySecret": "<redacted>"}]
    assert body["lycoris"] == {
        "algo": "lokr",
        "factor": 16,
        "api_token": "<redacted>",
        "comment": "<redacted>",
    }


def lycoris_problems(configs_dir: Path, value: str) -> list[str]:
    from simpletuner_cloud.datasets.environments import load_environment

    write_environment(configs_dir, "env", options={"lora_type": "lycoris", "lycoris_config": value})
    config = load_environment("env", configs_dir)
    assert config.lycoris is None
    return [p.replace(value, "<value>") for p in config.problems]


async def test_a_lycoris_file_outside_the_environment_is_never_read_nor_told_apart(
    client: httpx.AsyncClient, configs_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"algo": "lokr", "stolen": "content"}))
    (configs_dir / "env").mkdir(parents=True)
    (configs_dir / "env" / "link.json").symlink_to(outside)  # a link inside that leads out
    missing = lycoris_problems(configs_dir, str(tmp_path / "missing.json"))
    assert missing == [
        "lora_type is lycoris but the LyCORIS config file was not found: lycoris_config `<value>` must be a "
        f"readable file inside the environment's folder ({configs_dir / 'env'})."
    ]
    for value in ("/etc/passwd", "/etc/shadow", str(outside), "link.json", "../../outside.json"):
        assert lycoris_problems(configs_dir, value) == missing, value
        body = (await client.get("/api/cloud/configs/env")).json()
        assert (
            body["lycoris"] is None and "content" not in json.dumps(body) and "root:" not in json.dumps(body)
        )


async def test_lycoris_config_resolves_against_the_environment_not_the_working_dir(
    client: httpx.AsyncClient, configs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lycoris.json").write_text('{"algo": "from the server cwd"}')
    folder = write_environment(
        configs_dir, "env", options={"lora_type": "lycoris", "lycoris_config": "lycoris.json"}
    )
    assert (await client.get("/api/cloud/configs/env")).json()["lycoris"] is None
    (folder / "lycoris.json").write_text('{"algo": "lokr"}')
    assert (await client.get("/api/cloud/configs/env")).json()["lycoris"] == {"algo": "lokr"}
    # the WebUI's spelling, relative to SimpleTuner's root: `config/<env>/...`
    write_environment(
        configs_dir, "env", options={"lora_type": "lycoris", "lycoris_config": "config/env/lycoris.json"}
    )
    assert (await client.get("/api/cloud/configs/env")).json()["lycoris"] == {"algo": "lokr"}


async def test_a_dataset_list_outside_the_configs_folder_is_never_read_nor_told_apart(
    client: httpx.AsyncClient, configs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([local_entry("stolen")]))
    answers = []
    for value in ("/etc/passwd", str(outside), "outside.json", str(tmp_path / "missing.json")):
        folder = write_environment(configs_dir, "env", options={"data_backend_config": value})
        (folder / "multidatabackend.json").unlink()
        body = (await client.get("/api/cloud/configs/env")).json()
        assert (body["datasets"], body["dataloader_path"]) == ([], None)
        answers.append([p.replace(value, "<value>") for p in body["problems"]])
    assert (
        answers
        == [
            [
                "data_backend_config `<value>` was not found (it is read from the configs folder or the "
                "environment's folder)."
            ]
        ]
        * 4
    )


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
            "problems": [
                "data_backend_config `nowhere/datasets.json` was not found (it is read from the configs "
                "folder or the environment's folder)."
            ],
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


async def test_an_environment_with_an_object_as_dataset_id_is_one_broken_entry(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    """Before, the whole list answered 500; now the broken environment shows its problem and the
    others are listed as usual."""
    write_environment(configs_dir, "broken", datasets=[local_entry(dataset_id={"x": 1})])  # type: ignore[arg-type]
    write_environment(configs_dir, "good")
    response = await client.get("/api/cloud/configs")
    assert response.status_code == 200
    assert response.json()["configs"] == [
        {"name": "broken", "path": str(configs_dir / "broken"), "model_family": "flux",
         "model_type": "lora", "description": None, "datasets": 1,
         "problems": ["Dataset #1 has an id that is not text (a JSON object)."]},
        {"name": "good", "path": str(configs_dir / "good"), "model_family": "flux",
         "model_type": "lora", "description": None, "datasets": 1, "problems": []},
    ]  # fmt: skip


async def test_configs_nested_too_deeply_are_refused(client: httpx.AsyncClient, configs_dir: Path) -> None:
    """100,000 nested `[` was a RecursionError (500); a few hundred could not be serialised (500)."""
    for name, depth in (("abyss", 100_000), ("deep", 400)):
        write_environment(configs_dir, name)
        (configs_dir / name / "config.json").write_text("[" * depth + "]" * depth)
    write_environment(configs_dir, "nested-option", options={"deep": [[[[{"a": [1]}]]]]})
    options = json.loads((configs_dir / "nested-option" / "config.json").read_text())
    options["deep"] = json.loads("[" * 40 + "]" * 40)
    (configs_dir / "nested-option" / "config.json").write_text(json.dumps(options))
    listed = await client.get("/api/cloud/configs")
    assert listed.status_code == 200
    problems = {c["name"]: c["problems"] for c in listed.json()["configs"]}
    for name in ("abyss", "deep", "nested-option"):
        path = configs_dir / name / "config.json"
        assert problems[name] == [f"{path} nests lists or objects more than 32 levels deep."]
        response = await client.get(f"/api/cloud/configs/{name}")
        assert (response.status_code, response.json()["error"]["code"]) == (422, "config_invalid")


async def test_a_huge_environment_name_is_not_an_environment(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/configs/" + "a" * 10_000)
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "config_invalid",
            "message": f"`{'a' * 80}...` is not an environment name.",
            "hint": "Environment names use letters, digits, `.`, `_` and `-`.",
        }
    }


async def test_a_broken_metadata_file_does_not_break_the_list(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    write_environment(configs_dir, "env")
    (configs_dir / "env" / ".metadata.json").write_text('{"description": {"not": "text"}}')
    body = (await client.get("/api/cloud/configs")).json()
    assert body["configs"][0]["description"] is None
