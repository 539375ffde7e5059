"""`simpletuner sandbox`: flags become the POST /faults body; the command prints URL and token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app
from simpletuner_cloud.cli import sandbox as sandbox_cli
from simpletuner_cloud.sandbox.faults import Faults
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN

runner = CliRunner()


def test_no_flags_no_faults() -> None:
    assert sandbox_cli.fault_update() == {}


def test_every_fault_flag_maps_to_the_fault_json() -> None:
    update = sandbox_cli.fault_update(
        fail_at_step=4,
        starting_delay=3,
        rate_limit_next=2,
        retry_after=9,
        errors_next=1,
        error_status=502,
        error_html=True,
        errors_after_create=True,
        latency=0.5,
        late_validation=True,
        webhook_drop=["logs"],
        webhook_duplicate=True,
        webhook_delay=1.5,
        webhook_reorder=True,
        status_indicator="minor",
    )
    assert update == {
        "fail_at_step": 4,
        "starting_delay": 3,
        "rate_limit": {"count": 2, "retry_after": 9},
        "server_errors": {"count": 1, "status": 502, "html": True, "after_create": True},
        "latency": {"seconds": 0.5},
        "late_validation": True,
        "webhooks": {"drop": ["logs"], "duplicate": True, "delay": 1.5, "reorder": True},
        "status_page": {"indicator": "minor"},
    }
    Faults().merged(update)  # and the sandbox accepts it
    assert sandbox_cli.fault_update(webhook_drop=["all"])["webhooks"]["drop"] is True


def test_run_prints_url_and_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: dict[str, Any] = {}

    def fake_run(served_app: Any, **options: Any) -> None:
        served.update(options, app=served_app)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_STEP_SECONDS", "0.25")
    result = runner.invoke(
        app,
        [
            "sandbox",
            "--port",
            "5077",
            "--fail-at-step",
            "3",
            "--webhook-drop",
            "logs",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:5077" in result.output and DEFAULT_SANDBOX_TOKEN in result.output
    assert "no GPUs, no charges" in result.output
    sandbox = served["app"].state.sandbox
    assert (served["host"], served["port"]) == ("127.0.0.1", 5077)
    assert sandbox.config.public_base_url == "http://127.0.0.1:5077" and sandbox.config.step_seconds == 0.25
    assert sandbox.faults.fail_at_step == 3 and sandbox.faults.webhooks.drop == ["logs"]


def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", "r8_" + "t" * 37)
    result = runner.invoke(
        app, ["sandbox", "--public-url", "https://tunnel.example/", "--data-dir", str(tmp_path)]
    )
    assert "r8_" + "t" * 37 in result.output and "https://tunnel.example " in result.output


def test_bad_fault_flags_exit_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    result = runner.invoke(
        app, ["sandbox", "--error-status", "200", "--errors-next", "1", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "Invalid fault flags" in result.output
