"""`simpletuner cloud jobs artifacts ID` and `download ID [--to DIR]` against `simpletuner server
--sandbox` on a socket, after a local-download job ran there: the deliveries, files and samples
shown; every file but the caches fetched, checked and placed under their names; a second download
finds them already there; a job without files says so."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from simpletuner_cloud.cli import app as cli
from simpletuner_cloud.services.datasets import install_example
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.waiting import eventually_sync

runner = CliRunner()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, FastAPI, httpx.Client]]:
    monkeypatch.setenv("COLUMNS", "300")
    with sandbox_mode_server(poll_seconds=0.2, log_poll_seconds=0.2, job_lease_seconds=5) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.02, 0.0, 20
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield base, app, http


def verified_job(http: httpx.Client, delivery: str = "local") -> dict[str, Any]:
    submitted = http.post(
        "/api/cloud/jobs/submit", json={"config": "flux-lora-example", "consent": True, "delivery": delivery}
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]

    def settled() -> dict[str, Any] | None:
        answer: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}/artifacts").json()
        done = http.get(f"/api/cloud/jobs/{job_id}").json()["status"] == "succeeded"
        return answer if done and all(d["state"] == "verified" for d in answer["deliveries"]) else None

    return eventually_sync(settled, timeout=90, interval=0.05, what="the delivery to be verified")


def cloud(url: str, *args: str) -> Any:
    return runner.invoke(cli, ["cloud", "--url", url, "jobs", *args])


def test_artifacts_shows_the_delivery_its_files_and_samples(
    server: tuple[str, FastAPI, httpx.Client],
) -> None:
    url, _, http = server
    answer = verified_job(http)
    job_id = answer["job_id"]
    shown = cloud(url, "artifacts", job_id)
    assert shown.exit_code == 0, shown.output
    assert answer["message"] in " ".join(shown.output.split())
    assert "Delivery: local" in shown.output and "verified" in shown.output
    weights = next(
        a
        for a in answer["artifacts"]
        if a["name"].endswith("checkpoint-1000/pytorch_lora_weights.safetensors")
    )
    assert weights["name"] in shown.output and weights["sha256"][:12] in shown.output
    assert "Validation samples by step" in shown.output
    assert f"Also {answer['caches']['files']} cache files" in shown.output
    as_json = cloud(url, "artifacts", job_id, "--json")
    assert json.loads(as_json.stdout)["deliveries"] == answer["deliveries"]


def test_download_fetches_every_file_but_the_caches_and_checks_them(
    server: tuple[str, FastAPI, httpx.Client], tmp_path: Path
) -> None:
    url, _, http = server
    answer = verified_job(http)
    job_id = answer["job_id"]
    target = tmp_path / "mine"
    fetched = cloud(url, "download", job_id, "--to", str(target))
    assert fetched.exit_code == 0, fetched.output
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted(a["name"] for a in answer["artifacts"])
    for artifact in answer["artifacts"]:
        data = (target / artifact["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    assert answer["caches"]["files"] > 0 and not any(
        "/vae-cache/" in name or "/cache/" in name for name in files
    )
    again = cloud(url, "download", job_id, "--to", str(target))
    assert again.exit_code == 0 and again.output.count("already here") == len(files)


def test_download_of_a_job_without_files_says_so(
    server: tuple[str, FastAPI, httpx.Client], tmp_path: Path
) -> None:
    url, _, http = server
    submitted = http.post(
        "/api/cloud/jobs/submit", json={"config": "flux-lora-example", "consent": True, "delivery": "none"}
    ).json()
    result = cloud(url, "download", submitted["job_id"], "--to", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert (
        f"error[artifact_not_found]: Job {submitted['job_id']} has no delivered files yet." in result.output
    )
    assert 'hint: Delivery "none": the trained weights were not kept.' in " ".join(result.output.split())
    unknown = cloud(url, "artifacts", "job_0000000000000000000a")
    assert unknown.exit_code == 1 and "error[job_not_found]" in unknown.output
