"""Results delivery end to end with the sandbox trainer: `simpletuner server --sandbox` on a socket,
so the trainer's boto3 uploads reach our storage ingress (local download) or a real moto server
process (external S3), and its Hub pushes are read back through the sandbox's Hub routes. Checks the
inputs each job sends (on the sandbox's recorded prediction), the ledger ending verified, the files
in cloud_outputs/<job id>/, the artifacts API and its downloads, the config fixes and refusals before
upload, and that no secret appears in config_json, the logs, the state folder or an API answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.datasets import install_example
from simpletuner_cloud.storage.keys import credentials_for
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import WebhookDeliveryRow
from tests.datasets.factory import write_environment
from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server
from tests.support.s3_servers import MOTO_KEYS, MotoServer, moto_server
from tests.support.waiting import eventually_sync

SUBMIT = "/api/cloud/jobs/submit"
HF_TOKEN = "hf_sandboxTokenForDeliveryTests0000000"
EXAMPLE = {"config": "flux-lora-example", "consent": True}
FINAL = ("verified", "failed", "expired")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[httpx.Client, FastAPI]]:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    with sandbox_mode_server(poll_seconds=0.2, log_poll_seconds=0.2, job_lease_seconds=5) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.02, 0.0, 20
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield http, app


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    with moto_server(tmp_path / "moto") as server:
        server.bucket("my-loras")
        yield server


def sandbox(http: httpx.Client, path: str) -> Any:
    response = http.get(f"/sandbox{path}", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})
    assert response.is_success, response.text
    return response.json()


def submit(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post(SUBMIT, json={**EXAMPLE, **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def settled(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The artifacts answer once the job has ended and every delivery reached a final state."""

    def probe() -> dict[str, Any] | None:
        job = http.get(f"/api/cloud/jobs/{job_id}").json()
        answer: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}/artifacts").json()
        done = job["status"] in ("succeeded", "failed", "canceled")
        return answer if done and all(d["state"] in FINAL for d in answer["deliveries"]) else None

    return eventually_sync(probe, timeout=90, interval=0.05, what=f"job {job_id}'s deliveries settling")


def recorded_input(http: httpx.Client, job_id: str) -> dict[str, Any]:
    prediction_id = http.get(f"/api/cloud/jobs/{job_id}").json()["prediction_id"]
    return sandbox(http, f"/v1/predictions/{prediction_id}")["input"]  # type: ignore[no-any-return]


def assert_secrets_nowhere(http: httpx.Client, app: FastAPI, job_id: str, secrets: list[str]) -> None:
    home: Path = app.state.settings.home
    config_json = recorded_input(http, job_id)["config_json"]
    answers = [
        http.get(f"/api/cloud/jobs/{job_id}").text,
        http.get(f"/api/cloud/jobs/{job_id}/logs").text,
        http.get(f"/api/cloud/jobs/{job_id}/artifacts", params={"caches": True}).text,
        http.get("/api/cloud/publishing").text,
        http.get("/api/cloud/jobs").text,
    ]
    store = home / "cloud" / "secrets"
    files = [p for p in home.rglob("*") if p.is_file() and not p.is_relative_to(store)]

    webhook_bodies = asyncio.run(_webhook_bodies(app.state.settings.effective_database_url))
    assert webhook_bodies, "the flight recorder kept the job's webhooks"
    for secret in secrets:
        assert secret not in config_json
        for answer in answers:
            assert secret not in answer
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{secret[:6]}... found in {path}"
        for body in webhook_bodies:
            assert secret.encode() not in body


async def _webhook_bodies(url: str) -> list[bytes]:
    """The bodies the flight recorder kept, read with an engine of this thread's own loop."""
    database = Database(url)
    try:
        async with database.session() as session:
            rows = (await session.scalars(select(WebhookDeliveryRow.body))).all()
    finally:
        await database.dispose()
    return [zlib.decompress(body) for body in rows if body]


def test_a_local_download_job_ends_verified_with_its_files_in_cloud_outputs(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    body = submit(http, delivery="local")
    job_id = body["job_id"]
    settings = app.state.settings
    access_key, secret_key = credentials_for(SecretStore.of(settings), job_id)

    answer = settled(http, job_id)
    sent = recorded_input(http, job_id)
    base = f"http://127.0.0.1:{settings.port}"
    assert {k: v for k, v in sent.items() if k.startswith("s3_") or k == "hf_token"} == {
        "s3_bucket": "cloud-outputs",
        "s3_region": "us-east-1",
        "s3_endpoint_url": f"{base}/api/cloud/storage",
        "s3_base_path": job_id,
        "s3_access_key": access_key,
        "s3_secret_key": secret_key,
        "hf_token": HF_TOKEN,
    }
    folder = settings.outputs_dir / job_id
    [delivery] = answer["deliveries"]
    assert delivery["destination"] == "local" and delivery["state"] == "verified", answer["message"]
    assert delivery["reason"] is None and delivery["target"] == {
        "bucket": "cloud-outputs",
        "prefix": job_id,
        "folder": str(folder),
    }
    names = {a["name"] for a in answer["artifacts"]}
    [run] = {name.split("/")[0] for name in names if name != "README.md"}
    assert {
        "README.md",
        f"{run}/checkpoint-1000/pytorch_lora_weights.safetensors",
        f"{run}/validation_images/step_1000_validation_1024x1024.png",
    } <= names
    for artifact in answer["artifacts"]:
        path = folder / artifact["name"]
        assert artifact["location"] == str(path) and path.is_file()
        assert artifact["verified_at"] is not None and artifact["destination"] == "local"
    assert [group["step"] for group in answer["validation_samples"]] == [250, 500, 750, 1000]
    assert answer["caches"]["files"] > 0 and not any(a["kind"] == "cache" for a in answer["artifacts"])
    assert answer["retention"]["passed"] is False and answer["retention"]["seconds_left"] > 0
    assert (
        answer["message"] == f"{folder}: verified, {delivery['files']} files ({delivery['bytes']:,} bytes)."
    )
    card = (folder / "README.md").read_text()
    assert job_id in card and f"{run}/checkpoint-1000/pytorch_lora_weights.safetensors" in card

    weights = next(
        a
        for a in answer["artifacts"]
        if a["name"].endswith("checkpoint-1000/pytorch_lora_weights.safetensors")
    )
    downloaded = http.get(weights["download_url"])
    assert downloaded.status_code == 200 and downloaded.content == (folder / weights["name"]).read_bytes()
    job = http.get(f"/api/cloud/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    states = [e["data"]["state"] for e in job["timeline"] if e["kind"] == "delivery"]
    assert states == ["receiving", "delivered", "verified"]
    assert_secrets_nowhere(http, app, job_id, [secret_key, HF_TOKEN])


def test_a_hub_job_sends_the_repo_and_token_and_ends_verified_from_the_hubs_files(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    job_id = submit(http, delivery="hub", hub_model_id="ana/plushie-lora", hub_private=False)["job_id"]
    answer = settled(http, job_id)
    sent = recorded_input(http, job_id)
    assert sent["hub_model_id"] == "ana/plushie-lora" and sent["hf_token"] == HF_TOKEN
    assert not any(name.startswith("s3_") for name in sent)
    assert json.loads(sent["config_json"])["model_card_private"] is False

    [delivery] = answer["deliveries"]
    endpoint = f"http://127.0.0.1:{app.state.settings.port}/sandbox/hub"
    assert delivery["state"] == "verified", answer["message"]
    assert delivery["target"] == {"repo_id": "ana/plushie-lora", "private": False, "endpoint": endpoint}
    pushes = sandbox(http, "/_sandbox/hub")
    assert [p["kind"] for p in pushes] == ["checkpoint"] * 4 + ["final"]
    by_name = {a["name"]: a for a in answer["artifacts"]}
    assert set(by_name) == {"README.md", "pytorch_lora_weights.safetensors"}
    weights = by_name["pytorch_lora_weights.safetensors"]
    assert weights["kind"] == "weights" and weights["sha256"] and weights["size"] > 0
    assert weights["location"] == f"{endpoint}/ana/plushie-lora/blob/main/pytorch_lora_weights.safetensors"
    downloaded = http.get(weights["download_url"])
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == weights["sha256"]
    assert_secrets_nowhere(http, app, job_id, [HF_TOKEN])


def test_an_external_s3_job_sends_its_bucket_and_keys_and_ends_verified_from_the_listing(
    server: tuple[httpx.Client, FastAPI], moto: MotoServer
) -> None:
    http, app = server
    saved = http.put(
        "/api/cloud/publishing",
        json={
            "s3": {
                "endpoint_url": moto.url,
                "region": "us-east-1",
                "bucket": "my-loras",
                "prefix": "loras",
                "access_key": MOTO_KEYS["aws_access_key_id"],
                "secret_key": MOTO_KEYS["aws_secret_access_key"],
            }
        },
    )
    assert saved.status_code == 200, saved.text
    assert http.post("/api/cloud/publishing/s3/test").json()["ok"] is True
    job_id = submit(http, delivery="s3")["job_id"]
    answer = settled(http, job_id)
    sent = recorded_input(http, job_id)
    assert {k: v for k, v in sent.items() if k.startswith("s3_")} == {
        "s3_bucket": "my-loras",
        "s3_region": "us-east-1",
        "s3_endpoint_url": moto.url,
        "s3_base_path": f"loras/{job_id}",
        "s3_access_key": MOTO_KEYS["aws_access_key_id"],
        "s3_secret_key": MOTO_KEYS["aws_secret_access_key"],
    }
    [delivery] = answer["deliveries"]
    assert delivery["state"] == "verified", answer["message"]
    listed = moto.keys("my-loras", f"loras/{job_id}/")
    assert {f"loras/{job_id}/{a['name']}" for a in answer["artifacts"] if a["kind"] != "cache"} <= set(listed)
    for artifact in answer["artifacts"]:
        key = f"loras/{job_id}/{artifact['name']}"
        assert artifact["size"] == listed[key] and artifact["location"] == f"{moto.url}/my-loras/{key}"
    [run] = {a["name"].split("/")[0] for a in answer["artifacts"]}
    assert f"{run}/checkpoint-1000/pytorch_lora_weights.safetensors" in {
        a["name"] for a in answer["artifacts"]
    }
    assert [group["step"] for group in answer["validation_samples"]] == [250, 500, 750, 1000]
    sample = answer["validation_samples"][0]["images"][0]
    downloaded = http.get(sample["download_url"])
    assert downloaded.status_code == 200 and downloaded.content.startswith(b"\x89PNG")
    assert_secrets_nowhere(http, app, job_id, [MOTO_KEYS["aws_secret_access_key"], HF_TOKEN])


def test_an_s3_config_without_a_validation_prompt_is_refused_before_upload(
    server: tuple[httpx.Client, FastAPI], moto: MotoServer
) -> None:
    http, app = server
    http.put(
        "/api/cloud/publishing",
        json={"s3": {"endpoint_url": moto.url, "bucket": "my-loras", "access_key": "a", "secret_key": "b"}},
    ).raise_for_status()
    write_environment(app.state.settings.effective_configs_dir, "no-validation", images=2)
    refused = http.post(SUBMIT, json={"config": "no-validation", "consent": True, "delivery": "s3"})
    assert refused.status_code == 422
    assert refused.json() == {
        "error": {
            "code": "delivery_needs_validation",
            "message": "S3 needs validation: the trainer uploads its folder only after a validation run, "
            "and this config has no validation_prompt (or turns validation off), so nothing would ever "
            "be uploaded.",
            "hint": 'Add a "validation_prompt" (for example "a photo of sks plushie on a wooden desk") to '
            "config.json, or choose the Hub, which receives the final model.",
        }
    }
    assert http.get("/api/cloud/jobs").json()["total"] == 0
    assert sandbox(http, "/v1/files")["results"] == []


def test_an_s3_config_whose_intervals_miss_the_last_step_is_fixed_and_says_so(
    server: tuple[httpx.Client, FastAPI], moto: MotoServer
) -> None:
    http, app = server
    http.put(
        "/api/cloud/publishing",
        json={"s3": {"endpoint_url": moto.url, "bucket": "my-loras", **_moto_keys()}},
    ).raise_for_status()
    options = {"validation_prompt": "a photo of sks plushie", "checkpoint_step_interval": 30,
               "validation_step_interval": 45, "checkpoints_total_limit": 10}  # fmt: skip
    write_environment(app.state.settings.effective_configs_dir, "odd-intervals", options=options, images=2)
    body = submit(http, config="odd-intervals", delivery="s3")
    assert body["warnings"] == [
        "Changed for s3 (the trainer uploads its folder only after a validation run): "
        "checkpoint_step_interval 30 -> 25 (it must divide max_train_steps 100); "
        "validation_step_interval 45 -> 25 (it must divide max_train_steps 100); "
        "checkpoints_total_limit 10 -> 2 (every upload re-sends each checkpoint kept)."
    ]
    answer = settled(http, body["job_id"])
    config = json.loads(recorded_input(http, body["job_id"])["config_json"])
    assert (config["checkpoint_step_interval"], config["validation_step_interval"]) == (25, 25)
    assert config["checkpoints_total_limit"] == 2
    assert answer["deliveries"][0]["state"] == "verified", answer["message"]
    names = {a["name"].split("/", 1)[1] for a in answer["artifacts"]}
    assert "checkpoint-100/pytorch_lora_weights.safetensors" in names


def _moto_keys() -> dict[str, str]:
    return {"access_key": MOTO_KEYS["aws_access_key_id"], "secret_key": MOTO_KEYS["aws_secret_access_key"]}


def test_the_s3_keys_the_trainer_prints_when_it_refuses_its_arguments_are_masked_everywhere(
    server: tuple[httpx.Client, FastAPI], moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer prints its raw argument list, S3 keys included, when its parser refuses a key
    (trainer-contract 2.1); a key let through with SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS makes it do so.
    The keys reach neither the stored log, nor an answer, the live feed, the recorder or the disk."""
    http, app = server
    monkeypatch.setenv("SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS", "learning_rat")
    access_key, secret_key = "STJ01M8RWQNAVZBARFDKNV0", "ORs8fakeSecretKeyFAKEfakeSecretKeyFAKE1"
    http.put(
        "/api/cloud/publishing",
        json={"s3": {"endpoint_url": moto.url, "bucket": "my-loras", "access_key": access_key,
                     "secret_key": secret_key}},
    ).raise_for_status()  # fmt: skip
    options = {"validation_prompt": "a photo of sks plushie", "learning_rat": 1}
    write_environment(app.state.settings.effective_configs_dir, "leaky", options=options, images=2)
    job_id = submit(http, config="leaky", delivery="s3")["job_id"]
    job = eventually_sync(
        lambda: (j := http.get(f"/api/cloud/jobs/{job_id}").json())["status"] == "failed" and j,
        timeout=60,
        what="the refused run failing",
    )
    assert job["error"]["code"] == "trainer_argument_unknown", job["error"]
    logs = http.get(f"/api/cloud/jobs/{job_id}/logs").json()["text"]
    assert "Could not parse input:" in logs and '"secret_key": "****' in logs, logs
    feed = http.get("/api/cloud/events", params={"job": job_id, "once": "true"}).text
    assert "Could not parse input:" in feed
    for secret in (access_key, secret_key):
        assert secret not in feed
    assert_secrets_nowhere(http, app, job_id, [access_key, secret_key])


def test_a_failed_hub_job_after_a_verified_one_is_not_verified_with_its_files(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    """The campaign's case: the repo still held the first run's push, and the second job (failed at
    step 100, before any push) read `verified, 2 files` and downloaded the first run's weights."""
    http, _ = server
    first = submit(http, delivery="hub", hub_model_id="ana/my-lora")["job_id"]
    assert settled(http, first)["deliveries"][0]["state"] == "verified"
    faults = http.post(
        "/sandbox/faults",
        json={"scripts": [{"times": 1, "outcome": "fail", "at_step": 100}]},
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
    )
    assert faults.is_success, faults.text
    second = submit(http, delivery="hub", hub_model_id="ana/my-lora")["job_id"]
    answer = settled(http, second)
    assert answer["job_status"] == "failed"
    first_prediction = http.get(f"/api/cloud/jobs/{first}").json()["prediction_id"]
    assert {p["job_id"] for p in sandbox(http, "/_sandbox/hub")} == {first_prediction}  # no push of its own
    [delivery] = answer["deliveries"]
    assert (delivery["state"], delivery["reason"]["code"], delivery["files"]) == (
        "failed",
        "nothing_published",
        0,
    )
    assert answer["artifacts"] == []
    weights = http.get(f"/api/cloud/jobs/{second}/artifacts/pytorch_lora_weights.safetensors")
    assert weights.status_code == 404 and weights.json()["error"]["code"] == "artifact_not_found"
