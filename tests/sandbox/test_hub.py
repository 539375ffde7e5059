"""The sandbox's Hub routes with the real `huggingface_hub` client (HF_ENDPOINT=<sandbox>/hub): a Hub
training's pushes read back as the real trainer lays them out (each push writes the weights and the
model card at the repo's root), kept when the run's folder is pruned or removed by retention, gone
on reset; tokens checked like the Hub does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.support.provider_sandbox import RunningSandbox, dataset_zip, standalone_sandbox
from tests.support.waiting import eventually_sync

TOKEN = "hf_sandboxHubTestToken000000000000000"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with standalone_sandbox(
        tmp_path / "data", step_seconds=0.01, boot_seconds=0.0, max_simulated_steps=5
    ) as running:
        yield running


def train_with_hub(sandbox: RunningSandbox, tmp_path: Path, repo: str) -> str:
    """A prediction of the trainer with hub_model_id, run to the end; returns its id."""
    upload = httpx.post(
        f"{sandbox.url}/v1/files",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        files={"content": ("data.zip", dataset_zip(tmp_path / "data.zip").read_bytes(), "application/zip")},
        trust_env=False,
    ).json()
    version = sandbox.versions()[0]
    config = {"model_family": "flux", "lora_rank": 4, "max_train_steps": 10, "checkpoint_step_interval": 5,
              "checkpoints_total_limit": 1, "num_train_epochs": 0}  # fmt: skip
    created = httpx.post(
        f"{sandbox.url}/v1/predictions",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        json={
            "version": version,
            "input": {
                "images": upload["urls"]["get"],
                "config_json": json.dumps(config),
                "hub_model_id": repo,
                "hf_token": TOKEN,
            },
        },
        trust_env=False,
    ).json()
    eventually_sync(
        lambda: sandbox.get(f"/v1/predictions/{created['id']}")["status"] == "succeeded",
        what="the Hub training to succeed",
    )
    return str(created["id"])


def api(sandbox: RunningSandbox, token: str | None = TOKEN) -> HfApi:
    return HfApi(endpoint=f"{sandbox.url}/hub", token=token or False)


def test_the_last_push_is_the_repo_read_back_with_huggingface_hub(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    prediction = train_with_hub(sandbox, tmp_path, "ana/plushie")
    files = {f.path: f for f in api(sandbox).list_repo_tree("ana/plushie", recursive=True)}
    assert set(files) == {"README.md", "pytorch_lora_weights.safetensors"}
    run = next((sandbox.app.state.sandbox.outputs_dir / prediction).iterdir())
    final = (run / "pytorch_lora_weights.safetensors").read_bytes()
    weights = files["pytorch_lora_weights.safetensors"]
    assert weights.size == len(final) and weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(final).hexdigest()
    assert files["README.md"].lfs is None and files["README.md"].size == len((run / "README.md").read_bytes())
    resolved = httpx.get(
        f"{sandbox.url}/hub/ana/plushie/resolve/main/pytorch_lora_weights.safetensors",
        headers={"Authorization": f"Bearer {TOKEN}"},
        trust_env=False,
    )
    assert resolved.status_code == 200 and resolved.content == final


def test_the_repo_outlives_the_runs_folder(sandbox: RunningSandbox, tmp_path: Path) -> None:
    train_with_hub(sandbox, tmp_path, "ana/kept")
    before = {f.path: f.size for f in api(sandbox).list_repo_tree("ana/kept", recursive=True)}
    httpx.post(
        f"{sandbox.url}/_sandbox/clock",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        json={"advance": 7200},
        trust_env=False,
    ).raise_for_status()  # retention removes the run's output folder
    assert not any(sandbox.app.state.sandbox.outputs_dir.iterdir())
    assert {f.path: f.size for f in api(sandbox).list_repo_tree("ana/kept", recursive=True)} == before
    httpx.post(
        f"{sandbox.url}/_sandbox/reset", headers={"Authorization": f"Bearer {sandbox.token}"}, trust_env=False
    ).raise_for_status()
    with pytest.raises(RepositoryNotFoundError):
        list(api(sandbox).list_repo_tree("ana/kept"))


def test_tokens_are_checked_like_the_hub(sandbox: RunningSandbox) -> None:
    assert api(sandbox).whoami()["name"] == "sandbox-user"
    assert api(sandbox).whoami()["auth"]["accessToken"]["role"] == "write"
    read_only = "hf_readOnly" + "0" * 26
    assert api(sandbox, read_only).whoami(token=read_only)["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as refused:
        api(sandbox, "hf_short").whoami(token="hf_short")
    assert refused.value.response.status_code == 401
    unauthenticated = httpx.get(f"{sandbox.url}/hub/api/models/ana/x/tree/main", trust_env=False)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == {"error": "Invalid credentials in Authorization header"}
    with pytest.raises(RepositoryNotFoundError):
        list(api(sandbox).list_repo_tree("ana/never-pushed"))
