"""`simpletuner cloud cost ...` against a real server: estimate, limit set/off, status, history, and
a Block limit refusing a submit on the command line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app as cli
from simpletuner_cloud.services.datasets import install_example
from tests.support.provider_sandbox import sandbox_mode_server

runner = CliRunner()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, httpx.Client]]:
    monkeypatch.setenv("COLUMNS", "300")
    with sandbox_mode_server(poll_seconds=0.2, job_lease_seconds=5) as (base, app):
        app.state.worker.tasks.clear()  # jobs stay queued locally: only the figures matter here
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield base, http


def cost(url: str, *args: str) -> Any:
    return runner.invoke(cli, ["cloud", "--url", url, "cost", *args])


def flat(text: str) -> str:
    """The words, without the table's box drawing."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def test_estimate_prints_the_range_and_its_basis(server: tuple[str, httpx.Client]) -> None:
    url, http = server
    expected = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
    result = cost(url, "estimate", "flux-lora-example")
    assert result.exit_code == 0, result.output
    low, high = expected["cost_usd"]["low"], expected["cost_usd"]["high"]
    assert f"${Decimal(low):,.2f} to ${Decimal(high):,.2f} on l40s ($3.51/h)" in flat(result.output)
    assert "for 1,000 steps." in flat(result.output)
    assert "Basis: SimpleTuner's published step times" in flat(result.output)
    as_json = cost(url, "estimate", "flux-lora-example", "--hardware", "a100", "--json")
    assert as_json.exit_code == 0 and '"usd_per_hour": "5.04"' in as_json.output


def test_limit_set_status_block_and_off(server: tuple[str, httpx.Client]) -> None:
    url, http = server
    result = cost(
        url, "limit", "set", "--amount", "20", "--period", "weekly", "--action", "block", "--cancel-running"
    )
    assert result.exit_code == 0, result.output
    said = "Cost limit on: $20.00 weekly, block, cancels running jobs at the limit."
    assert flat(result.output).endswith(said)
    limit = http.get("/api/cloud/providers/replicate").json()["cost_limit"]
    assert (limit["amount"], limit["period"], limit["action"], limit["cancel_running_at_limit"]) == (
        20.0,
        "weekly",
        "block",
        True,
    )

    status = cost(url, "status")
    assert status.exit_code == 0
    text = flat(status.output)
    assert (
        "state ok" in text
        and "limit $20.00 weekly (block)" in text
        and "cancel at limit yes (accrued)" in text
    )

    assert cost(url, "limit", "set", "--amount", "1", "--action", "block").exit_code == 0
    refused = runner.invoke(
        cli, ["cloud", "--url", url, "jobs", "submit", "flux-lora-example", "--consent", "--delivery", "none"]
    )
    assert refused.exit_code == 1
    assert "This job does not fit under the cost limit" in flat(refused.output)

    off = cost(url, "limit", "off")
    assert off.exit_code == 0 and "Cost limit off" in off.output
    assert http.get("/api/cloud/providers/replicate").json()["cost_limit"]["enabled"] is False
    bad = cost(url, "limit", "set", "--amount", "lots")
    assert bad.exit_code == 1 and "amount" in bad.output and "Traceback" not in bad.output


def test_history_shows_the_spend_by_day_and_hardware(server: tuple[str, httpx.Client]) -> None:
    url, http = server
    assert http.post("/api/cloud/jobs/submit", json={"config": "flux-lora-example", "consent": True,
                                                     "delivery": "none"}).status_code == 201  # fmt: skip
    by_day = cost(url, "history")
    assert by_day.exit_code == 0, by_day.output
    reserved = http.get("/api/cloud/spend").json()["reserved_usd"]
    assert f"reserved ${Decimal(reserved):,.2f}" in flat(by_day.output)
    by_hardware = cost(url, "history", "--by", "hardware", "--json")
    assert by_hardware.exit_code == 0 and '"group_by": "hardware"' in by_hardware.output


def saved_limit(http: httpx.Client) -> tuple[Any, ...]:
    limit = http.get("/api/cloud/providers/replicate").json()["cost_limit"]
    keys = ("enabled", "amount", "period", "action", "cancel_running_at_limit", "cancel_on")
    return tuple(limit[key] for key in keys)


def test_limit_set_keeps_the_options_it_is_not_given(server: tuple[str, httpx.Client]) -> None:
    url, http = server
    first = cost(url, "limit", "set", "--amount", "20", "--period", "weekly", "--action", "block")
    assert first.exit_code == 0, first.output
    changed = cost(url, "limit", "set", "--amount", "1e3")
    assert changed.exit_code == 0, changed.output
    assert flat(changed.output).endswith("Cost limit on: $1,000.00 weekly, block.")
    assert saved_limit(http) == (True, 1000.0, "weekly", "block", False, "accrued")

    assert cost(url, "limit", "set", "--cancel-running", "--projected").exit_code == 0
    assert saved_limit(http) == (True, 1000.0, "weekly", "block", True, "projected")
    assert cost(url, "limit", "set", "--no-cancel-running", "--accrued", "--action", "warn").exit_code == 0
    assert saved_limit(http) == (True, 1000.0, "weekly", "warn", False, "accrued")

    assert cost(url, "limit", "off").exit_code == 0
    assert saved_limit(http) == (False, 1000.0, "weekly", "warn", False, "accrued")
    again = cost(url, "limit", "set")  # the amount and period were kept for next time
    assert again.exit_code == 0, again.output
    assert flat(again.output).endswith("Cost limit on: $1,000.00 weekly, warn.")


def test_projected_needs_cancel_running(server: tuple[str, httpx.Client]) -> None:
    url, http = server
    refused = cost(url, "limit", "set", "--amount", "5", "--projected")
    assert refused.exit_code == 2
    assert "--projected only applies with --cancel-running" in flat(refused.output)
    assert saved_limit(http)[0] is False  # nothing was changed
    assert cost(url, "limit", "set", "--amount", "5", "--cancel-running").exit_code == 0
    assert cost(url, "limit", "set", "--projected").exit_code == 0  # cancel-running is saved
    assert saved_limit(http)[-2:] == (True, "projected")
    dropping = cost(url, "limit", "set", "--no-cancel-running", "--projected")
    assert dropping.exit_code == 2


def test_limit_set_without_any_saved_amount_asks_for_one(server: tuple[str, httpx.Client]) -> None:
    url, _ = server
    result = cost(url, "limit", "set", "--period", "daily")
    assert result.exit_code == 2 and "--amount" in flat(result.output) and "Traceback" not in result.output
