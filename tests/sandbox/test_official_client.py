"""Fidelity proof: the official `replicate` client (1.0.x), unmodified, against a live sandbox,
standalone and mounted under a host app at /sandbox."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from replicate.exceptions import ReplicateError

import replicate
from simpletuner_cloud.sandbox import create_sandbox_app
from tests.sandbox.conftest import AUTH, SECRET, TOKEN, TRAINER, fast_config, images_zip, trainer_config
from tests.support.live_server import free_port, live_server
from tests.support.waiting import eventually_sync


@pytest.fixture
def standalone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_sandbox_app(fast_config(tmp_path, public_base_url=base, page_size=2))
    with live_server(app, port=port):
        yield base


@pytest.fixture
def mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The way `simpletuner server --sandbox` hosts it: mounted, started from the host's lifespan."""
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox_app = create_sandbox_app(fast_config(tmp_path, public_base_url=f"{base}/sandbox"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sandbox_app.state.sandbox.start()
        yield
        await sandbox_app.state.sandbox.stop()

    host = FastAPI(lifespan=lifespan)

    @host.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    host.mount("/sandbox", sandbox_app)
    with live_server(host, port=port):
        yield f"{base}/sandbox"


def _wait(client: replicate.Client, prediction_id: str, kind: str = "predictions") -> Any:
    getter = client.predictions.get if kind == "predictions" else client.trainings.get

    def finished() -> Any:
        job = getter(prediction_id)
        return job if job.status in ("succeeded", "failed", "canceled") else None

    return eventually_sync(finished, what=f"{kind} {prediction_id} finishing")


def _full_flow(base: str) -> None:
    client = replicate.Client(api_token=TOKEN, base_url=base)

    account = client.accounts.current()
    assert (account.type, account.username) == ("user", "sandbox")

    uploaded = client.files.create(io.BytesIO(images_zip()), filename="dataset.zip", metadata={"ref": "abc"})
    assert uploaded.name == "dataset.zip" and uploaded.content_type == "application/zip"
    assert uploaded.metadata == {"ref": "abc"} and uploaded.urls is not None
    assert uploaded.urls["get"].startswith(base + "/v1/files/")
    assert client.files.get(uploaded.id).checksums["sha256"] == uploaded.checksums["sha256"]
    assert [f.id for f in client.files.list()] == [uploaded.id]

    model = client.models.get(TRAINER)
    assert model.owner == "simpletuner" and model.latest_version is not None
    versions = model.versions.list()
    assert versions.results[0].id == model.latest_version.id
    assert "images" in versions.results[0].openapi_schema["components"]["schemas"]["Input"]["properties"]

    input = {"images": uploaded.urls["get"], "config_json": trainer_config()}
    by_version = client.predictions.create(version=model.latest_version.id, input=input)
    assert by_version.status == "starting" and by_version.urls is not None
    assert by_version.urls["get"].startswith(base)
    done = _wait(client, by_version.id)
    assert done.status == "succeeded", done.error
    assert done.output.startswith("Training complete. Output: output/cog/cog-")
    assert done.metrics["predict_time"] >= 0
    assert "Total optimization steps = 10" in done.logs

    # The models route is for official models; Replicate refuses it for the trainer, and so does
    # the sandbox, in the shape the client turns into a ReplicateError.
    with pytest.raises(ReplicateError) as refused:
        client.predictions.create(model=TRAINER, input=input)
    assert (refused.value.status, refused.value.title) == (422, "Invalid version or not permitted")

    to_cancel = client.predictions.create(version=model.latest_version.id, input=input)
    canceled = client.predictions.cancel(to_cancel.id)
    assert canceled.status == "canceled"

    client.predictions.create(version=f"{TRAINER}:{model.latest_version.id}", input=input)
    first = client.predictions.list()
    assert len(first.results) >= 2
    everything = [p.id for page in replicate.paginate(client.predictions.list) for p in page]
    assert len(everything) == 3 and by_version.id in everything

    training = client.trainings.create(
        version=f"{TRAINER}:{model.latest_version.id}", input=input, destination="sandbox/my-lora"
    )
    trained = _wait(client, training.id, "trainings")
    assert trained.status == "succeeded"
    assert trained.output["version"].startswith("sandbox/my-lora:")
    assert trained.output["weights"].startswith(base + "/delivery/")
    assert client.trainings.get(training.id).destination == "sandbox/my-lora"

    assert client.webhooks.default.secret().key == SECRET
    assert client.files.delete(uploaded.id) is True


def test_official_client_standalone(standalone: str) -> None:
    _full_flow(standalone)


def test_official_client_mounted(mounted: str) -> None:
    _full_flow(mounted)


def test_wrong_token_is_replicate_401(standalone: str) -> None:
    client = replicate.Client(api_token="r8_" + "x" * 37, base_url=standalone)
    with pytest.raises(ReplicateError) as caught:
        client.accounts.current()
    assert caught.value.status == 401
    assert caught.value.title == "Unauthenticated"
    assert caught.value.detail == "You did not pass a valid authentication token"


def test_upload_over_100_mib_is_413(standalone: str, tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    with big.open("wb") as handle:
        handle.truncate(101 * 1024 * 1024)
    client = replicate.Client(api_token=TOKEN, base_url=standalone)
    with pytest.raises(ReplicateError) as caught:
        client.files.create(big)
    assert caught.value.status == 413
    assert caught.value.detail == "Files must be less than 100MB in size"


def test_dropped_connection_after_create_when_mounted(mounted: str) -> None:
    """The official client, against the sandbox mounted in a host app: a create whose connection is
    dropped raises a transport error, yet the prediction exists and `list` finds it."""
    client = replicate.Client(api_token=TOKEN, base_url=mounted)
    version = client.models.get(TRAINER).latest_version
    assert version is not None
    faults = httpx.post(f"{mounted}/faults", json={"connection_drops": {"count": 1}}, headers=AUTH)
    assert faults.status_code == 200
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.predictions.create(version=version.id, input={"max_train_steps": 2})
    assert [p.input for p in client.predictions.list().results] == [{"max_train_steps": 2}]
