"""Fixtures for the sandbox tests: a fast config (0.01 s steps, no boot time, tiny schedules), the
app started and stopped around each test, an authenticated in-process client, and helpers."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN
from tests.sandbox.openapi_spec import check_every_response
from tests.support.waiting import eventually

BASE = "http://sandbox.test"
TOKEN = DEFAULT_SANDBOX_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TRAINER = "simpletuner/advanced-trainer"


def fast_config(tmp_path: Path, **overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "public_base_url": BASE,
        "step_seconds": 0.01,
        "boot_seconds": 0.0,
        "max_simulated_steps": 5,
        "retention_sweep_seconds": 0.05,
        "webhook_throttle_seconds": 0.05,
        "webhook_retry_delays": (0.02, 0.05, 0.1),
        "webhook_timeout_seconds": 10.0,  # only bounds a slow answer; a loaded receiver may take seconds
        "webhook_secret": SECRET,
        "data_dir": tmp_path / "sandbox-data",
        "status_page_timeout_seconds": 1.0,
    }
    values.update(overrides)
    return SandboxConfig(**values)


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return fast_config(tmp_path)


@pytest.fixture
async def app(config: SandboxConfig) -> AsyncIterator[FastAPI]:
    sandbox_app = create_sandbox_app(config)
    await sandbox_app.state.sandbox.start()
    try:
        yield sandbox_app
    finally:
        await sandbox_app.state.sandbox.stop()


def client_for(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An in-process client whose every `/v1` answer is checked against Replicate's OpenAPI spec."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        headers=AUTH if headers is None else headers,
        event_hooks={"response": [check_every_response]},
    )


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


@asynccontextmanager
async def running(config: SandboxConfig) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A started sandbox with its own config, and a checked client; stopped on exit."""
    sandbox_app = create_sandbox_app(config)
    await sandbox_app.state.sandbox.start()
    try:
        async with client_for(sandbox_app) as client:
            yield sandbox_app, client
    finally:
        await sandbox_app.state.sandbox.stop()


def images_zip(count: int = 3) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            archive.writestr(f"sks_plushie_{index}.png", b"\x89PNG\r\n\x1a\n" + bytes(16))
    return buffer.getvalue()


def trainer_config(**extra: Any) -> str:
    config = {
        "model_family": "flux",
        "lora_rank": 4,
        "max_train_steps": 10,
        "checkpoint_step_interval": 5,
        "learning_rate": 1e-4,
        "num_train_epochs": 0,
    }
    config.update(extra)
    return json.dumps(config)


async def upload(
    api: httpx.AsyncClient, data: bytes | None = None, name: str = "dataset.zip"
) -> dict[str, Any]:
    response = await api.post("/v1/files", files={"content": (name, data or images_zip(), "application/zip")})
    assert response.status_code == 201, response.text
    return response.json()


async def trainer_input(api: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    uploaded = await upload(api)
    return {"images": uploaded["urls"]["get"], "config_json": trainer_config(), **extra}


async def create(api: httpx.AsyncClient, input: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await api.post(
        "/v1/predictions", json={"version": await latest_version(api), "input": input, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def latest_version(api: httpx.AsyncClient, model: str = TRAINER) -> str:
    response = await api.get(f"/v1/models/{model}")
    return str(response.json()["latest_version"]["id"])


async def wait_until(
    api: httpx.AsyncClient,
    path: str,
    statuses: tuple[str, ...] = ("succeeded", "failed", "canceled", "aborted"),
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal last
        last = (await api.get(path)).json()
        return last if last["status"] in statuses else None

    return await eventually(reached, what=lambda: f"{path} reaching {statuses} (last: {last.get('status')})")
