"""The job flow end to end: `simpletuner server --sandbox` on a socket, so the server's calls reach the
sandbox's Replicate and its simulated trainer for real. Submit, follow (status, progress, logs,
metrics, SSE), cancel, delete, idempotency, and refusals before anything is uploaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.replicate.errors import MODEL_NOT_FOUND_HINT
from simpletuner_cloud.sandbox.dataset_archive import sample_captions
from tests.datasets.factory import local_entry, write_environment, write_image
from tests.support.job_server import EXAMPLE, SUBMIT, job_server, sandbox
from tests.support.waiting import eventually_sync


@pytest.fixture
def server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    with job_server(steps=20) as running:
        yield running


def wait_for(http: httpx.Client, job_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return eventually_sync(probe, timeout=timeout, interval=0.05, what=f"job {job_id} reaching {statuses}")


def predictions_of(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    listed = sandbox(http, "GET", "/v1/predictions")["results"]
    return [
        p
        for p in listed
        if f"job={job_id}" in json.dumps(sandbox(http, "GET", f"/v1/predictions/{p['id']}")) or True
    ]


def test_a_job_runs_to_success_with_progress_logs_metrics_and_cost(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    submitted = http.post(SUBMIT, json=EXAMPLE)
    assert submitted.status_code == 201, submitted.text
    body = submitted.json()
    job_id = body["job_id"]
    assert body["success"] is True and body["idempotent_hit"] is False and body["cost_limit_warning"] is None
    assert body["job"]["id"] == job_id and body["status"] == body["job"]["status"]
    assert body["job"]["status"] in ("created", "packaging", "uploading", "submitting", "queued")
    assert any("delivery" in w.lower() or "none" in w for w in body["warnings"])

    done = wait_for(http, job_id, "succeeded", "failed", "canceled")
    assert done["status"] == "succeeded", done
    assert done["prediction_id"] and done["provider_status"] == "succeeded"
    assert (
        done["progress"]["step"] == done["progress"]["total_steps"] == 1000
    )  # the example's max_train_steps
    assert done["progress"]["percent"] == 100.0 and done["progress"]["loss"] is not None
    rate = app.state.settings  # the job's own hardware (l40s) prices it
    assert done["cost"]["final_usd"] is not None and float(done["cost"]["final_usd"]) > 0
    assert done["cost"]["usd_per_hour"] == "3.6" or float(done["cost"]["usd_per_hour"]) > 0
    assert rate is not None
    statuses = [e["to_status"] for e in done["timeline"] if e["kind"] == "status"]
    order = ["created", "packaging", "uploading", "submitting", "queued", "running", "succeeded"]
    # A `start` webhook can arrive before the create's answer is applied, so `queued` may be skipped;
    # everything else is entered once, in order.
    assert statuses == [s for s in order if s in statuses] and set(order) - set(statuses) <= {"queued"}

    prediction = sandbox(http, "GET", f"/v1/predictions/{done['prediction_id']}")
    logs = http.get(f"/api/cloud/jobs/{job_id}/logs").json()
    assert logs["text"] == prediction["logs"] and logs["size"] == len(prediction["logs"])
    tail = http.get(f"/api/cloud/jobs/{job_id}/logs", params={"tail": 2}).json()
    assert tail["text"] == "".join(prediction["logs"].splitlines(keepends=True)[-2:])
    after = http.get(f"/api/cloud/jobs/{job_id}/logs", params={"after": logs["size"] - 10}).json()
    assert after["text"] == prediction["logs"][-10:] and after["next_offset"] == logs["size"]

    metrics = http.get(f"/api/cloud/jobs/{job_id}/metrics").json()
    steps = [p["step"] for p in metrics["points"]]
    assert (
        steps == sorted(steps) and steps[-1] == 1000 and all(p["loss"] is not None for p in metrics["points"])
    )

    # Clean-up after the end: the dataset file is deleted at Replicate.
    def cleaned() -> bool:
        return any(
            e["kind"] == "cleaned_up" for e in http.get(f"/api/cloud/jobs/{job_id}").json()["timeline"]
        )

    eventually_sync(cleaned, timeout=30, interval=0.05, what="clean-up")
    assert sandbox(http, "GET", "/v1/files")["results"] == []

    # Exactly one prediction for the job.
    inputs = [
        sandbox(http, "GET", f"/v1/predictions/{p['id']}")["input"]
        for p in sandbox(http, "GET", "/v1/predictions")["results"]
    ]
    assert len(inputs) == 1 and "config_json" in inputs[0] and "images" in inputs[0]


def test_the_same_idempotency_key_returns_the_same_job(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    first = http.post(SUBMIT, json=EXAMPLE, headers={"Idempotency-Key": "key-1"})
    again = http.post(SUBMIT, json=EXAMPLE, headers={"Idempotency-Key": "key-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["idempotent_hit"] is True
    in_body = http.post(SUBMIT, json={**EXAMPLE, "idempotency_key": "key-1"})
    assert in_body.status_code == 200 and in_body.json()["job_id"] == first.json()["job_id"]
    other = http.post(SUBMIT, json={**EXAMPLE, "hardware": "a100"}, headers={"Idempotency-Key": "key-1"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert http.get("/api/cloud/jobs").json()["total"] == 1


def test_simpletuner_field_names_are_accepted(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    submitted = http.post(
        SUBMIT,
        json={
            "config_name_to_load": "flux-lora-example",
            "hardware_profile": "a100",
            "consent": True,
            "delivery": "none",
            "provider": "replicate",
        },
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["job"]["hardware"] == "a100"


def test_unknown_config_key_is_refused_before_any_upload(
    server: tuple[httpx.Client, FastAPI], tmp_path: Path
) -> None:
    http, app = server
    folder = app.state.settings.effective_configs_dir / "flux-lora-example"
    config = json.loads((folder / "config.json").read_text())
    config["learning_rat"] = 1e-4
    (folder / "config.json").write_text(json.dumps(config))
    refused = http.post(SUBMIT, json=EXAMPLE)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "trainer_argument_unknown" and "learning_rat" in error["message"]
    assert "learning_rate" in error["hint"]
    assert sandbox(http, "GET", "/v1/files")["results"] == []
    assert http.get("/api/cloud/jobs").json()["total"] == 0


def test_refusals_before_anything_is_written(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    cases = [
        ({"config": "flux-lora-example", "delivery": "none"}, 428, "consent_required"),
        ({"config": "flux-lora-example", "consent": True}, 422, "delivery_required"),
        ({**EXAMPLE, "hardware": "h200"}, 422, "hardware_unknown"),
        ({**EXAMPLE, "delivery": "hub", "hub_model_id": "me/lora"}, 422, "hf_token_missing"),
        ({"config": "no-such-env", "consent": True, "delivery": "none"}, 404, "config_missing"),
    ]
    for body, status, code in cases:
        answer = http.post(SUBMIT, json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert http.post(SUBMIT, json={**EXAMPLE, "surprise": 1}).status_code == 422
    assert http.get("/api/cloud/jobs").json()["total"] == 0


def test_cancel_while_running_cancels_at_replicate_and_delete_removes_it(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    app.state.sandbox_app.state.sandbox.config.step_seconds = 0.5
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
    running = wait_for(http, job_id, "running")
    canceled = http.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["canceled_at_replicate"] is True
    assert canceled.json()["job"]["status"] == "canceled"
    prediction = sandbox(http, "GET", f"/v1/predictions/{running['prediction_id']}")
    assert prediction["status"] == "canceled"
    again = http.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["canceled_at_replicate"] is False

    def cleaned() -> bool:
        return http.delete(f"/api/cloud/jobs/{job_id}").status_code == 200

    eventually_sync(cleaned, timeout=30, interval=0.1, what="delete after clean-up")
    assert http.get(f"/api/cloud/jobs/{job_id}").status_code == 404


def test_cancel_before_the_create_creates_nothing(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    app.state.worker.interval = 3600  # hold the worker: the job stays local
    runner = app.state.job_runner
    original = runner.run_pass

    async def idle() -> None:
        return None

    runner.run_pass = idle
    app.state.worker.tasks[0].run = idle
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
    canceled = http.post(f"/api/cloud/jobs/{job_id}/cancel").json()
    assert canceled["job"]["status"] == "canceled" and canceled["canceled_at_replicate"] is False
    app.state.worker.tasks[0].run = original
    app.state.worker.wake()
    eventually_sync(
        lambda: any(
            e["kind"] == "cleaned_up" for e in http.get(f"/api/cloud/jobs/{job_id}").json()["timeline"]
        ),
        timeout=30,
        interval=0.05,
        what="clean-up",
    )
    assert sandbox(http, "GET", "/v1/predictions")["results"] == []
    assert sandbox(http, "GET", "/v1/files")["results"] == []


def test_failed_run_keeps_the_error_with_a_hint_and_its_cost(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    sandbox(http, "POST", "/faults", json={"fail_at_step": 5})
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
    failed = wait_for(http, job_id, "failed", "succeeded")
    assert failed["status"] == "failed", failed
    prediction = sandbox(http, "GET", f"/v1/predictions/{failed['prediction_id']}")
    assert failed["error"] == {
        "code": "trainer_failed",
        "message": prediction["error"],
        "hint": "Open the job's logs (`simpletuner cloud jobs logs <id>`) for the trainer's own message.",
    }
    assert failed["cost"]["final_usd"] is not None


def test_list_filters_pages_and_totals(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    ids = [
        http.post(SUBMIT, json={**EXAMPLE, "hardware": hw}).json()["job_id"]
        for hw in ("l40s", "a100", "l40s")
    ]
    page = http.get("/api/cloud/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]] and page["total"] == 3 and page["next_cursor"]
    rest = http.get("/api/cloud/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_cursor"] is None
    a100 = http.get("/api/cloud/jobs", params={"hardware": "a100"}).json()
    assert [j["id"] for j in a100["jobs"]] == [ids[1]] and a100["total"] == 1
    guide = http.get("/api/cloud/jobs", params={"hardware": "L40S"}).json()  # the guide's name
    assert [j["id"] for j in guide["jobs"]] == [ids[2], ids[0]] and guide["total"] == 2
    unknown = http.get("/api/cloud/jobs", params={"hardware": "h100"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "hardware_unknown", unknown.text
    assert "l40s, a100" in unknown.json()["error"]["hint"]
    assert http.get("/api/cloud/jobs", params={"q": ids[0][-8:]}).json()["total"] == 1
    assert http.get("/api/cloud/jobs", params={"status": "nonsense"}).status_code == 422


def test_events_stream_is_resumable(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
    wait_for(http, job_id, "succeeded")
    eventually_sync(  # the timeline is complete once the clean-up wrote its entry
        lambda: any(
            e["kind"] == "cleaned_up" for e in http.get(f"/api/cloud/jobs/{job_id}").json()["timeline"]
        ),
        timeout=30,
        interval=0.05,
        what="clean-up",
    )
    events = read_events(http, f"/api/cloud/events?job={job_id}&once=true")
    kinds = {name for _, name, _ in events}
    assert {"status", "log", "progress", "upload"} <= kinds
    statuses = [data["to_status"] for _, name, data in events if name == "status"]
    assert statuses[0] == "created" and statuses[-1] == "succeeded"
    logs = "".join(data["text"] for _, name, data in events if name == "log")
    assert logs == http.get(f"/api/cloud/jobs/{job_id}/logs").json()["text"]
    middle = events[len(events) // 2][0]
    resumed = read_events(http, f"/api/cloud/events?job={job_id}&once=true", last_event_id=middle)
    assert [e[0] for e in resumed] == [e[0] for e in events if int(e[0]) > int(middle)]
    by_query = read_events(http, f"/api/cloud/events?job={job_id}&once=true&after={middle}")
    assert [e[0] for e in by_query] == [e[0] for e in resumed]
    assert http.get("/api/cloud/events?job=job_nope&once=true").status_code == 404


def read_events(
    http: httpx.Client, url: str, last_event_id: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    # as bytes: a header carries Latin-1, which httpx would not encode from `²` itself
    headers = {"Last-Event-ID": last_event_id.encode("latin-1")} if last_event_id else {}
    found: list[tuple[str, str, dict[str, Any]]] = []
    event_id, name, data = "", "message", []
    with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                found.append((event_id, name, json.loads("\n".join(data))))
                name, data = "message", []
    return found


def test_a_job_stuck_in_queued_says_why_with_the_status_page(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    app.state.settings.stuck_queued_seconds = 0.5
    sandbox(http, "POST", "/faults", json={"starting_delay": 3, "status_page": {"indicator": "major"}})
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]

    def noticed() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}").json()
        return job if job["notice"] else None

    job = eventually_sync(noticed, timeout=60, interval=0.05, what="the stuck-job notice")
    assert job["status"] == "queued"
    notice = job["notice"]
    assert (
        notice["kind"] == "stuck_queued" and "Replicate queues jobs while GPUs are busy" in notice["message"]
    )
    assert "replicate.statuspage.io" in notice["hint"]
    assert notice["status_page"]["indicator"] == "major"
    assert any(e["kind"] == "stuck" for e in job["timeline"])
    assert wait_for(http, job_id, "succeeded")["notice"] == notice  # kept as history


def test_textfile_captions_need_the_rename_agreement_and_then_train(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = server
    folder = write_environment(
        app.state.settings.effective_configs_dir,
        "captioned",
        datasets=[local_entry(caption_strategy="textfile")],
        images=0,
    )
    for index, caption in enumerate(["sks plushie on a desk", "sks plushie in the snow"]):
        name = folder / "data" / f"DSC_{index:04d}.jpg"
        write_image(name, 1500 + index, seed=index)
        name.with_suffix(".txt").write_text(caption)
    body = {"config": "captioned", "consent": True, "delivery": "none"}
    refused = http.post(SUBMIT, json=body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "dataset_unsupported")
    app.state.sandbox_app.state.sandbox.config.step_seconds = 0.2  # time to read the file while it runs
    job_id = http.post(SUBMIT, json={**body, "rename_to_captions": True}).json()["job_id"]
    running = wait_for(http, job_id, "running", "succeeded", "failed")
    assert running["status"] == "running", running
    images = sandbox(http, "GET", f"/v1/predictions/{running['prediction_id']}")["input"]["images"]
    sandbox_state = app.state.sandbox_app.state.sandbox
    file_id = next(
        f["id"] for f in sandbox(http, "GET", "/v1/files")["results"] if f["urls"]["get"] == images
    )
    stored = sandbox_state.files.get(file_id, sandbox_state.clock.now())  # what the trainer fetched
    assert sorted(sample_captions(stored.path.read_bytes()).values()) == [
        "sks plushie in the snow",
        "sks plushie on a desk",
    ]
    assert wait_for(http, job_id, "succeeded", "failed")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:1", "http://127.0.0.1:1/api/webhooks/replicate?job="),
        ("http://127.0.0.1:1/custom/path?token=1", "http://127.0.0.1:1/custom/path?token=1&job="),
    ],
)
def test_simpletuner_webhook_url_names_where_this_job_reports(
    server: tuple[httpx.Client, FastAPI], given: str, expected: str
) -> None:
    http, app = server
    job_id = http.post(SUBMIT, json={**EXAMPLE, "webhook_url": given}).json()["job_id"]
    job = wait_for(http, job_id, "queued", "running", "succeeded")
    recorded = app.state.sandbox_app.state.sandbox.jobs[job["prediction_id"]]
    assert recorded.webhook == f"{expected}{job_id}"


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("http://[::1/", "is not a valid URL"),  # was a 500 after the budget lock was taken
        ("http:// /x", "must not contain spaces"),  # was a 201, then refused by Replicate
        ("https://xn--zz/hook", "is not a usable URL"),
        ("ftp://example.com/hook", "absolute http(s) URL"),
        ("http:///no-host", "absolute http(s) URL"),
    ],
)
def test_a_webhook_url_that_is_no_url_is_refused_before_anything_is_reserved(
    server: tuple[httpx.Client, FastAPI], given: str, words: str
) -> None:
    http, _ = server
    answer = http.post(SUBMIT, json={**EXAMPLE, "webhook_url": given})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["details"]["fields"][0]["field"]) == ("validation_error", "webhook_url")
    assert words in error["message"] and error["hint"], error
    assert http.get("/api/cloud/jobs").json()["total"] == 0


def test_a_cursor_the_api_did_not_give_out_is_refused(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    http.post(SUBMIT, json=EXAMPLE).raise_for_status()
    for cursor in ("abc", "job_zzzz", "job_" + "u" * 20, "upl_" + "0" * 20, "job_" + "0" * 21):
        answer = http.get("/api/cloud/jobs", params={"cursor": cursor})
        assert answer.status_code == 422, (cursor, answer.text)
        assert answer.json()["error"] == {
            "code": "cursor_invalid",
            "message": "The cursor is not one this API gave out.",
            "hint": "Pass the `next_cursor` of the previous page as it is, or leave `cursor` out to start "
            "from the newest job.",
            "details": {"fields": [{"field": "cursor", "message": "not a `next_cursor` of this API"}]},
        }
    oldest_possible = http.get("/api/cloud/jobs", params={"cursor": "job_" + "0" * 20}).json()
    assert (oldest_possible["jobs"], oldest_possible["total"]) == ([], 1)


def test_an_unusable_last_event_id_is_ignored_and_an_after_out_of_range_is_422(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    """A `Last-Event-ID` the stream cannot resume from (`abc`, Unicode digits, past 2**63-1) is ignored,
    as EventSource resends whatever it was given; `?after=` is a parameter and is validated."""
    http, _ = server
    job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
    url = f"/api/cloud/events?job={job_id}&once=true"
    first = read_events(http, url)[0]
    assert (first[1], first[2]["to_status"]) == ("status", "created")
    for header in ("abc", "²", "1¹", str(2**63), "9" * 32):
        resumed = read_events(http, url, last_event_id=header)  # the whole timeline, from its start
        assert resumed and resumed[0][:2] == first[:2], header
    assert read_events(http, url, last_event_id=str(2**63 - 1)) == []
    for query in (f"{url}&after={2**63}", f"/api/cloud/events?once=true&after={2**63}"):
        answer = http.get(query)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["details"]["fields"][0]["field"]) == ("validation_error", "after")
    assert read_events(http, f"{url}&after={2**63 - 1}") == []


def test_a_model_replicate_does_not_have_is_a_provider_not_found_naming_the_setting(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, _ = server
    saved = http.put("/api/cloud/providers/replicate", json={"model": "simpletuner/no-such-trainer"})
    assert saved.status_code == 200, saved.text
    answer = http.post(SUBMIT, json=EXAMPLE)
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert error["code"] == "provider_not_found"
    assert error["hint"] == MODEL_NOT_FOUND_HINT
    assert error["details"]["path"].endswith("/v1/models/simpletuner/no-such-trainer")
    assert http.get("/api/cloud/jobs").json()["total"] == 0
