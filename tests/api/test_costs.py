"""Costs end to end on `simpletuner server --sandbox`: estimates (and learning from finished runs),
Block and Warn at submit with the high estimate reserved, twenty simultaneous submissions never over
the limit, fail closed, cancel at the limit with webhooks off, exact decimal money, and spend by day,
hardware and environment in the limit's time zone, and a deleted job's cost still counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.services import budget_gate
from simpletuner_cloud.services.datasets import install_example
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.jobs import set_fields
from tests.datasets.factory import write_environment
from tests.support.job_server import EXAMPLE, SUBMIT, job_server, sandbox
from tests.support.postgres import fresh_database
from tests.support.provider_sandbox import record_job, sandbox_mode_server
from tests.support.waiting import eventually_sync

SETTINGS = "/api/cloud/providers/replicate"


@pytest.fixture
def server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    with job_server(steps=10) as running:
        yield running


def set_limit(http: httpx.Client, **limit: Any) -> None:
    answer = http.put(SETTINGS, json={"cost_limit": {"enabled": True, "time_zone": "UTC", **limit}})
    assert answer.status_code == 200, answer.text


def hold_worker(app: FastAPI) -> None:
    """Jobs stay where submit left them (reservations stay open) while a test counts them."""
    app.state.worker.tasks.clear()


def test_estimate_is_a_range_at_each_hardware_rate(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    l40s = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
    a100 = http.post(
        "/api/cloud/cost-estimate", json={"config": "flux-lora-example", "hardware": "a100"}
    ).json()
    assert l40s["hardware"] == "l40s" and l40s["usd_per_hour"] == "3.51" and a100["usd_per_hour"] == "5.04"
    assert l40s["steps"] == 1000
    assert Decimal(l40s["cost_usd"]["low"]) < Decimal(l40s["cost_usd"]["high"])
    assert l40s["duration_seconds"]["low"] < l40s["duration_seconds"]["high"]
    assert l40s["basis"]["source"] == "table" and l40s["basis"]["past_jobs"] == 0
    assert l40s["basis"]["model_family"] == "flux" and l40s["basis"]["validations"] == 4
    for answer in (l40s, a100):  # decimal strings, exact from the hour rate
        hours_high = Decimal(answer["duration_seconds"]["high"]) / 3600
        assert abs(
            Decimal(answer["cost_usd"]["high"]) - hours_high * Decimal(answer["usd_per_hour"])
        ) < Decimal("0.011")
    submitted = http.post(SUBMIT, json=EXAMPLE).json()
    assert submitted["estimate"] == l40s
    assert Decimal(submitted["job"]["cost"]["estimated_usd"]) == Decimal(l40s["cost_usd"]["high"])
    bad = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example", "hardware": "h200"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "hardware_unknown"


def test_hardware_as_the_guide_writes_it_is_the_same_profile(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    for written, profile in (("L40S", "l40s"), ("A100 (80GB)", "a100")):
        answer = http.post(
            "/api/cloud/cost-estimate", json={"config": "flux-lora-example", "hardware": written}
        )
        assert answer.status_code == 200 and answer.json()["hardware"] == profile, answer.text
    submitted = http.post(SUBMIT, json={**EXAMPLE, "hardware": "A100 (80GB)"})
    assert submitted.status_code == 201 and submitted.json()["job"]["hardware"] == "a100", submitted.text


def test_the_estimate_learns_from_finished_runs(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    before = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
    for _ in range(2):
        job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
        eventually_sync(
            lambda job_id=job_id: http.get(f"/api/cloud/jobs/{job_id}").json()["status"] == "succeeded",
            timeout=60, interval=0.05, what="a run finishing",
        )  # fmt: skip
    after = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
    assert after["basis"]["source"] == "history" and after["basis"]["past_jobs"] == 2
    measured = [http.get(f"/api/cloud/jobs/{j['id']}").json()["progress"]["seconds_per_step"]
                for j in http.get("/api/cloud/jobs").json()["jobs"]]  # fmt: skip
    assert after["basis"]["seconds_per_step"]["low"] == pytest.approx(min(measured) * 0.9, abs=1e-4)
    # The sandbox trains in a blink: the learned estimate is far below SimpleTuner's published rates.
    assert Decimal(after["cost_usd"]["high"]) < Decimal(before["cost_usd"]["high"])


def test_block_refuses_a_job_that_does_not_fit_before_any_upload(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, _ = server
    set_limit(http, amount="2", period="daily", action="block")
    refused = http.post(SUBMIT, json=EXAMPLE)
    assert refused.status_code == 402
    error = refused.json()["error"]
    estimate = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()["cost_usd"][
        "high"
    ]
    assert error["code"] == "cost_limit_exceeded"
    assert error["message"] == (
        f"This job does not fit under the cost limit: spent $0.00, reserved by other jobs $0.00, this job's "
        f"estimate up to ${estimate}, daily limit $2.00."
    )
    assert "raise the limit" in error["hint"]
    assert error["details"]["estimate"] == estimate and error["details"]["limit"] == "2"
    assert sandbox(http, "GET", "/v1/files")["results"] == []
    assert http.get("/api/cloud/jobs").json()["total"] == 0


def test_max_train_steps_sets_the_estimate_and_what_block_reserves(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    """The job's `max_train_steps` overrides the config's, in the estimate as at the trainer: a
    100,000-step job cannot pass a Block limit on the config's 1,000-step estimate."""
    http, _ = server

    def estimate(**extra: Any) -> dict[str, Any]:
        answer = http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example", **extra})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    config, short, long = estimate(), estimate(max_train_steps=20), estimate(max_train_steps=100_000)
    assert (config["steps"], short["steps"], long["steps"]) == (1000, 20, 100_000)
    highs = [Decimal(answer["cost_usd"]["high"]) for answer in (short, config, long)]
    assert highs == sorted(highs) and len(set(highs)) == 3
    set_limit(http, amount=config["cost_usd"]["high"], period="daily", action="block")
    refused = http.post(SUBMIT, json={**EXAMPLE, "max_train_steps": 100_000})
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["details"]["estimate"] == long["cost_usd"]["high"]
    assert http.get("/api/cloud/jobs").json()["total"] == 0
    accepted = http.post(SUBMIT, json={**EXAMPLE, "max_train_steps": 20})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["estimate"]["steps"] == 20


def test_warn_submits_with_the_warning_in_the_answer_and_the_timeline(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, _ = server
    set_limit(http, amount="2", period="daily", action="warn")
    submitted = http.post(SUBMIT, json=EXAMPLE)
    assert submitted.status_code == 201
    warning = submitted.json()["cost_limit_warning"]
    assert warning.startswith("Over the cost limit:") and warning.endswith("(Warn: submitted anyway).")
    assert warning in submitted.json()["warnings"]
    timeline = http.get(f"/api/cloud/jobs/{submitted.json()['job_id']}").json()["timeline"]
    assert [e["message"] for e in timeline if e["kind"] == "cost_limit_warning"] == [warning]


def test_twenty_simultaneous_submissions_never_pass_the_limit(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    hold_worker(app)
    high = Decimal(
        http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()["cost_usd"]["high"]
    )
    limit = high * 5 + high / 2  # room for five reservations
    set_limit(http, amount=str(limit), period="monthly", action="block")
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: http.post(SUBMIT, json=EXAMPLE).status_code, range(20)))
    assert sorted(statuses) == [201] * 5 + [402] * 15
    status = http.get("/api/cloud/cost-limit/status").json()
    assert Decimal(status["committed_total_usd"]) == high * 5 <= limit
    assert Decimal(status["reserved_usd"]) == high * 5


def test_block_fails_closed_when_the_check_cannot_run(
    server: tuple[httpx.Client, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _ = server

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("database is on fire")

    monkeypatch.setattr(budget_gate, "current_spend", broken)
    set_limit(http, amount="1000", action="block")
    refused = http.post(SUBMIT, json=EXAMPLE)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "cost_limit_unavailable"
    set_limit(http, amount="1000", action="warn")
    passed = http.post(SUBMIT, json=EXAMPLE)
    assert passed.status_code == 201
    assert (
        passed.json()["cost_limit_warning"]
        == "The cost limit could not be checked; this job was not counted against it."
    )


def test_running_jobs_are_canceled_at_the_limit_without_webhooks(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    app.state.sandbox_app.state.sandbox.config.step_seconds = 1.0  # a long run
    sandbox(http, "POST", "/faults", json={"webhooks": {"drop": True}})
    set_limit(
        http, amount="0.002", period="daily", action="warn", cancel_running_at_limit=True
    )  # ~2 s of L40S
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]

    def canceled() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}").json()
        return job if job["status"] in ("canceled", "succeeded", "failed") else None

    job = eventually_sync(canceled, timeout=90, interval=0.1, what="the cancel at the limit")
    assert job["status"] == "canceled", job
    assert job["error"]["code"] == "cost_limit_reached"
    assert job["error"]["message"].startswith(
        "Canceled at the cost limit: this daily period's spend reached $"
    )
    assert any(e["kind"] == "cost_limit_cancel" for e in job["timeline"])
    assert sandbox(http, "GET", f"/v1/predictions/{job['prediction_id']}")["status"] == "canceled"


def test_money_is_exact_decimal_through_the_api(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    set_limit(http, amount="0.3", period="daily", action="block")

    now = datetime.now(UTC)
    record_finished(
        app, [(now - timedelta(seconds=2), "l40s", "0.1"), (now - timedelta(seconds=1), "l40s", "0.2")]
    )
    status = http.get("/api/cloud/cost-limit/status").json()
    # 0.1 + 0.2 in binary floating point is 0.30000000000000004; in Decimal it is the limit exactly.
    assert (status["spent_usd"], status["committed_total_usd"], status["limit_usd"]) == ("0.3", "0.3", "0.3")
    assert (status["state"], status["percent"]) == ("exceeded", 100.0)
    assert http.post(SUBMIT, json=EXAMPLE).json()["error"]["code"] == "cost_limit_exceeded"


def test_spend_by_day_hardware_and_config_in_the_limit_time_zone(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    assert (
        http.put(
            SETTINGS, json={"cost_limit": {"period": "monthly", "time_zone": "America/Sao_Paulo"}}
        ).status_code
        == 200
    )
    now = datetime.now(UTC)
    local_midnight = now.astimezone(ZoneInfo("America/Sao_Paulo")).replace(
        hour=0, minute=0, second=0, microsecond=0
    )

    record_finished(
        app,
        [
            (local_midnight + timedelta(minutes=1), "l40s", "1.25"),
            (local_midnight - timedelta(minutes=1), "a100", "2"),
        ],
    )
    by_day = http.get("/api/cloud/spend", params={"group_by": "day"}).json()
    assert by_day["time_zone"] == "America/Sao_Paulo" and by_day["period"] == "monthly"
    days = {g["key"]: g["usd"] for g in by_day["groups"]}
    today = local_midnight.date().isoformat()
    yesterday = (local_midnight - timedelta(days=1)).date().isoformat()
    assert days[today] == "1.25"
    if yesterday in days:  # a job a minute before local midnight counts the day before (same month)
        assert days[yesterday] == "2"
    by_hardware = {
        g["key"]: g["usd"]
        for g in http.get("/api/cloud/spend", params={"group_by": "hardware"}).json()["groups"]
    }
    assert by_hardware.get("l40s") == "1.25"
    by_config = http.get("/api/cloud/spend", params={"group_by": "config"}).json()["groups"]
    assert {g["key"] for g in by_config} == {"flux-lora"}
    billing = http.get(f"{SETTINGS}/billing").json()
    assert Decimal(str(billing["spend"]["month"])) == Decimal(by_day["total_usd"])


def record_finished(
    app: FastAPI, jobs: list[tuple[datetime, str, str]], *, cleaned: bool = False
) -> list[str]:
    """Finished jobs written through the store's own functions, from a connection of our own to the
    server's database (SQLite in WAL mode takes a second writer). `cleaned`: the clean-up after the
    end has run, so the jobs can be deleted."""

    async def run() -> list[str]:
        database = Database(app.state.settings.effective_database_url)
        ids = []
        try:
            async with database.session() as session:
                for completed, hardware, cost in jobs:
                    ids.append(
                        await record_job(
                            session, "succeeded", hardware=hardware, completed=completed, cost=cost
                        )
                    )
                    if cleaned:
                        await set_fields(session, ids[-1], cleaned_at=completed)
                await session.commit()
        finally:
            await database.dispose()
        return ids

    return asyncio.run(run())


def spend_and_status(http: httpx.Client) -> dict[str, Any]:
    """Every spend view (each grouping) and the cost-limit status, with each grouping's sum."""
    views: dict[str, Any] = {"status": http.get("/api/cloud/cost-limit/status").json()}
    for group_by in ("day", "hardware", "config"):
        view = http.get("/api/cloud/spend", params={"group_by": group_by}).json()
        views[group_by] = view
        assert sum(Decimal(g["usd"]) for g in view["groups"]) == Decimal(view["total_usd"]), view
    return views


def test_deleting_a_finished_job_keeps_its_cost_in_the_spend_and_the_limit(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    """The campaign's repro: spend $0.034475, a succeeded job of $0.003823 deleted (200), and the
    spend said $0.030652 afterwards, the cost-limit status too: deleting history gave budget back."""
    http, app = server
    set_limit(http, amount="1", period="daily", action="warn")
    now = datetime.now(UTC)
    finished = [
        (now - timedelta(seconds=2), "a100", "0.030652"),
        (now - timedelta(seconds=1), "l40s", "0.003823"),
    ]
    kept, deleted = record_finished(app, finished, cleaned=True)
    before = spend_and_status(http)
    assert before["day"]["total_usd"] == before["status"]["spent_usd"] == "0.034475"

    answer = http.delete(f"/api/cloud/jobs/{deleted}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "deleted": deleted,
        "not_deleted": [
            "Its cost, $0.003823: it still counts in the spend and against the cost limit of the period it "
            "finished in."
        ],
    }
    assert http.get(f"/api/cloud/jobs/{deleted}").status_code == 404
    assert http.get(f"/api/cloud/jobs/{kept}").status_code == 200
    assert spend_and_status(http) == before
    assert {g["key"]: g["usd"] for g in before["hardware"]["groups"]} == {
        "a100": "0.030652",
        "l40s": "0.003823",
    }


def test_block_still_counts_a_deleted_jobs_cost(server: tuple[httpx.Client, FastAPI]) -> None:
    """A Block limit with room for the estimate only while the deleted job's $1.00 is forgotten."""
    http, app = server
    high = Decimal(
        http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()["cost_usd"]["high"]
    )
    set_limit(http, amount=str(high + Decimal("0.5")), period="daily", action="block")
    (job_id,) = record_finished(
        app, [(datetime.now(UTC) - timedelta(seconds=1), "l40s", "1.00")], cleaned=True
    )
    assert http.delete(f"/api/cloud/jobs/{job_id}").status_code == 200

    refused = http.post(SUBMIT, json=EXAMPLE)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert (error["code"], Decimal(error["details"]["spent"])) == ("cost_limit_exceeded", Decimal(1))
    assert error["message"].startswith("This job does not fit under the cost limit: spent $1.00,")
    assert http.get("/api/cloud/jobs").json()["total"] == 0
    assert sandbox(http, "GET", "/v1/files")["results"] == []


@pytest.mark.postgres
def test_twenty_simultaneous_submissions_to_two_servers_on_postgresql_never_pass_the_limit() -> None:
    with fresh_database() as url:
        servers = [sandbox_mode_server(database_url=url, job_lease_seconds=5) for _ in range(2)]
        (base_a, app_a), (base_b, app_b) = (servers[0].__enter__(), servers[1].__enter__())
        try:
            for app in (app_a, app_b):
                hold_worker(app)
                install_example(app.state.settings)
            with (
                httpx.Client(base_url=base_a, trust_env=False, timeout=60) as a,
                httpx.Client(base_url=base_b, trust_env=False, timeout=60) as b,
            ):
                estimate = a.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
                high = Decimal(estimate["cost_usd"]["high"])
                set_limit(a, amount=str(high * 7 + high / 2), period="monthly", action="block")
                clients = [a, b] * 10
                with ThreadPoolExecutor(max_workers=20) as pool:
                    statuses = list(
                        pool.map(lambda http: http.post(SUBMIT, json=EXAMPLE).status_code, clients)
                    )
                assert sorted(statuses) == [201] * 7 + [402] * 13
                for http in (a, b):  # both servers see the same figures
                    status = http.get("/api/cloud/cost-limit/status").json()
                    assert Decimal(status["reserved_usd"]) == high * 7
        finally:
            for context in reversed(servers):
                context.__exit__(None, None, None)


def test_the_estimate_prices_the_run_the_delivery_plan_makes(server: tuple[httpx.Client, FastAPI]) -> None:
    """S3 delivery rewrites the intervals (30 -> 25, to divide the 100 steps): the estimate priced the
    config as written and the submit reserved more, so a Block limit with room for the estimate
    refused the submit ("estimate up to ...", higher than the estimate)."""
    http, app = server
    s3 = {"endpoint_url": "http://127.0.0.1:9", "bucket": "my-loras", "access_key": "AKIAESTIMATE0000",
          "secret_key": "estimateSecretKey0000000000000000000000"}  # fmt: skip
    http.put("/api/cloud/publishing", json={"s3": s3}).raise_for_status()
    options = {"validation_prompt": "a photo of sks plushie", "checkpoint_step_interval": 30,
               "validation_step_interval": 30}  # fmt: skip
    write_environment(app.state.settings.effective_configs_dir, "intervals", options=options, images=2)
    body = {"config": "intervals", "consent": True, "hardware": "a100", "delivery": "s3"}
    estimate = http.post("/api/cloud/cost-estimate", json=body).json()
    basis = estimate["basis"]
    # 100 steps at 25: four validations, four checkpoints and the final save.
    assert (estimate["steps"], basis["checkpoints"], basis["validations"]) == (100, 5, 4)
    set_limit(http, amount=estimate["cost_usd"]["high"], period="daily", action="block")
    hold_worker(app)
    submitted = http.post(SUBMIT, json=body)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["estimate"] == estimate
    assert Decimal(submitted.json()["job"]["cost"]["estimated_usd"]) == Decimal(estimate["cost_usd"]["high"])
