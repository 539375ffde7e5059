"""`simpletuner cloud webhooks list|show|replay|test` against `simpletuner server --sandbox` on a
socket: the self-test's event, a rejected curl, and an accepted delivery signed with the sandbox's key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from simpletuner_cloud.cli import app as cli
from simpletuner_cloud.store.database import Database
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.webhooks import prediction, signed, tracked_job

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    with sandbox_mode_server(home=tmp_path_factory.mktemp("home")) as running:
        yield running


def run(url: str, *args: str) -> Any:
    return runner.invoke(cli, ["cloud", "--url", url, "webhooks", *args])


def run_json(url: str, *args: str) -> Any:
    result = run(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def accepted_delivery(url: str, app: FastAPI) -> int:
    """A job in the server's database and a signed `completed` delivery for it."""

    async def make_job() -> str:
        database = Database(app.state.settings.effective_database_url)
        try:
            return await tracked_job(database, "p_cli", status="running")
        finally:
            await database.dispose()

    job_id = asyncio.run(make_job())
    secret = app.state.sandbox_app.state.sandbox.webhook_secret
    logs = "Step 3 of 3: loss 0.1, lr 0.0001\n" + "x" * 5000
    raw, headers = signed(prediction("p_cli", "succeeded", logs=logs), secret=secret)
    answer = httpx.post(f"{url}/api/webhooks/replicate", content=raw, headers=headers, params={"job": job_id})
    assert answer.json()["outcome"] == "accepted", answer.text
    return int(answer.json()["delivery_id"])


def test_test_list_show_and_replay(server: tuple[str, FastAPI]) -> None:
    url, app = server
    tested = run(url, "test")
    assert tested.exit_code == 0, tested.output
    assert (
        "reached receiver" in tested.stdout and "test event reached this server's receiver" in tested.stdout
    )
    httpx.post(f"{url}/api/webhooks/replicate", content=b"{}")  # the seed's manual curl
    delivery_id = accepted_delivery(url, app)

    listed = run(url, "list")
    assert listed.exit_code == 0, listed.output
    assert "Webhook deliveries" in listed.stdout and "accepted" in listed.stdout
    everything = run_json(url, "list")["deliveries"]
    assert [(e["outcome"], e["code"]) for e in everything] == [
        ("accepted", None),
        ("rejected", "signature_missing"),
        ("test", None),
    ]
    answer = run_json(url, "list", "--outcome", "accepted")
    assert [entry["id"] for entry in answer["deliveries"]] == [delivery_id]

    shown = run(url, "show", str(delivery_id))
    assert shown.exit_code == 0, shown.output
    assert "webhook-signature" in shown.stdout and "characters, see --json]" in shown.stdout
    assert run_json(url, "show", str(delivery_id))["body"]["logs"].endswith("x" * 5000)

    replayed = run(url, "replay", str(delivery_id))
    assert replayed.exit_code == 0, replayed.output
    assert (
        f"Replayed delivery {delivery_id} on job" in replayed.stdout and "status unchanged" in replayed.stdout
    )


def test_replaying_a_rejected_delivery_prints_the_reason(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    httpx.post(f"{url}/api/webhooks/replicate", content=b"{}")
    rejected = run_json(url, "list", "--outcome", "rejected", "--limit", "1")["deliveries"][0]
    result = run(url, "replay", str(rejected["id"]))
    assert result.exit_code == 1
    assert "error[delivery_not_replayable]" in result.stderr and "it was rejected" in result.stderr
    missing = run(url, "show", "999999")
    assert missing.exit_code == 1 and "webhooks list" in missing.stderr


def test_a_failing_self_test_exits_1_with_the_problem(server: tuple[str, FastAPI]) -> None:
    url, _ = server
    settings = f"{url}/api/cloud/providers/replicate"
    httpx.put(settings, json={"public_url": "https://does-not-exist.invalid"})
    try:
        result = run(url, "test")
    finally:
        httpx.put(settings, json={"public_url": None})
    assert result.exit_code == 1
    assert "error[dns]" in result.stderr and "does not resolve" in result.stderr
