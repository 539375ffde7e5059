"""`simpletuner sandbox`'s flags for the newer fault knobs (dropped connections, slow bodies, the
run timeout, scripted outcomes) become the `POST /faults` body, and the served sandbox has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app
from simpletuner_cloud.cli import sandbox as sandbox_cli
from simpletuner_cloud.sandbox.faults import Faults

runner = CliRunner()
OOM = {"times": 1, "outcome": "fail", "at_step": 3, "preset": "cuda_oom"}


def test_new_fault_flags_map_to_the_fault_json() -> None:
    update = sandbox_cli.fault_update(
        drops_next=2, slow_body=0.5, slow_upload=1.5, run_timeout=60, scripts=[OOM]
    )
    assert update == {
        "connection_drops": {"count": 2, "after_create": True},
        "slow_bodies": {"response_delay": 0.5, "request_delay": 1.5},
        "run_timeout_seconds": 60,
        "scripts": [OOM],
    }
    merged = Faults().merged(update)  # and the sandbox accepts it
    assert merged.scripts[0].preset == "cuda_oom" and merged.connection_drops.after_create is True
    before = sandbox_cli.fault_update(drops_next=1, drops_before_create=True)
    assert before == {"connection_drops": {"count": 1, "after_create": False}}
    assert sandbox_cli.fault_update(slow_upload=2)["slow_bodies"] == {
        "response_delay": 0.0,
        "request_delay": 2,
    }


def test_script_flags_are_json_objects() -> None:
    assert sandbox_cli.parse_scripts(['{"outcome": "cancel", "at_step": 2}']) == [
        {"outcome": "cancel", "at_step": 2}
    ]
    assert sandbox_cli.parse_scripts(None) == []
    with pytest.raises(ValueError, match=r"^--script must be a JSON object: \[1\]$"):
        sandbox_cli.parse_scripts(["[1]"])
    with pytest.raises(ValueError, match=r"^--script must be a JSON object \(Expecting value\): fail$"):
        sandbox_cli.parse_scripts(["fail"])


def test_run_serves_a_sandbox_with_the_new_faults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda served_app, **options: served.update(options, app=served_app))
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", "r8_" + "f" * 37)
    result = runner.invoke(
        app,
        [
            "sandbox",
            "--data-dir",
            str(tmp_path),
            "--drops-next",
            "1",
            "--slow-body",
            "0.25",
            "--run-timeout",
            "120",
            "--script",
            '{"match": {"webhook_query": {"job": "j-1"}}, "outcome": "queued", "queued_seconds": 900}',
            "--script",
            '{"times": 1, "outcome": "fail", "at_step": 3, "preset": "cuda_oom"}',
        ],
    )
    assert result.exit_code == 0, result.output
    faults = served["app"].state.sandbox.faults
    assert (faults.connection_drops.count, faults.connection_drops.after_create) == (1, True)
    assert (faults.slow_bodies.response_delay, faults.slow_bodies.request_delay) == (0.25, 0.0)
    assert faults.run_timeout_seconds == 120
    assert [s.outcome for s in faults.scripts] == ["queued", "fail"]
    assert faults.scripts[0].match.webhook_query == {"job": "j-1"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--script", "not json"], "Invalid fault flags: --script must be a JSON object"),
        (["--script", '{"outcome": "explode"}'], "Invalid fault flags:"),
        (["--run-timeout", "0"], "Invalid fault flags:"),
    ],
)
def test_run_refuses_bad_new_fault_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: list[str], message: str
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda served_app, **options: served.update(app=served_app))
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", "r8_" + "f" * 37)
    result = runner.invoke(app, ["sandbox", "--data-dir", str(tmp_path), *flags])
    assert result.exit_code == 2 and message in result.output
    assert served == {}  # nothing was served
