"""Submit and the data preview refuse, before anything is uploaded, a config the trainer would fail
at start: a value its parser cannot read, a LyCORIS run without its JSON, a run without a length
(`trainer_argument_invalid`, naming the option)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.job_server import EXAMPLE, SUBMIT, job_server, sandbox

PREVIEW = "/api/cloud/data-consent/preview"


@pytest.fixture
def server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    with job_server(steps=5) as running:
        yield running


def edit_example(app: FastAPI, **changes: Any) -> Path:
    """The shipped example's config with keys changed (None removes one)."""
    folder = app.state.settings.effective_configs_dir / "flux-lora-example"
    config = {**json.loads((folder / "config.json").read_text()), **changes}
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return folder


def refused(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "trainer_argument_invalid" and error["hint"], error
    return error


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"max_train_steps": "abc"}, "max_train_steps"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"model_family": None}, "model_family"),
        ({"lora_type": "lycoris"}, "lycoris_config"),
    ],
)
def test_submit_and_preview_refuse_what_the_parser_would(
    server: tuple[httpx.Client, FastAPI], changes: dict[str, Any], argument: str
) -> None:
    http, app = server
    edit_example(app, **changes)
    for path in (SUBMIT, PREVIEW):
        error = refused(http, path, EXAMPLE)
        assert error["details"]["argument"] == argument and f"`{argument}`" in error["message"]
    assert sandbox(http, "GET", "/v1/files")["results"] == []


def test_an_unknown_model_family_is_refused_at_submit(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    edit_example(app, model_family="nonexistent")
    error = refused(http, SUBMIT, EXAMPLE)
    assert error["details"]["argument"] == "model_family"
    assert "SIMPLETUNER_EXTRA_MODEL_FAMILIES" in error["hint"]
    assert sandbox(http, "GET", "/v1/files")["results"] == []


def test_a_run_without_a_length_is_refused_unless_the_request_gives_one(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    edit_example(app, max_train_steps=0, num_train_epochs=0)
    error = refused(http, SUBMIT, EXAMPLE)
    assert error["details"] == {"argument": "max_train_steps", "problem": "is 0 and num_train_epochs is 0"}
    assert sandbox(http, "GET", "/v1/files")["results"] == []
    submitted = http.post(SUBMIT, json={**EXAMPLE, "max_train_steps": 20})
    assert submitted.status_code == 201, submitted.text
