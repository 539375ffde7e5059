"""Creating, reading, listing and cancelling predictions and trainings; Prefer: wait; Cancel-After;
input validation; retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from simpletuner_cloud.sandbox.catalogue import version_id
from simpletuner_cloud.sandbox.clock import iso
from simpletuner_cloud.sandbox.jobs import Job
from simpletuner_cloud.sandbox.runtime import Sandbox
from tests.sandbox.conftest import (
    BASE,
    TRAINER,
    create,
    fast_config,
    latest_version,
    running,
    trainer_input,
    wait_until,
)
from tests.support.waiting import eventually

INVALID_VERSION = {
    "title": "Invalid version or not permitted",
    "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)",
    "status": 422,
}


async def test_create_shape(api: httpx.AsyncClient) -> None:
    inputs = await trainer_input(api)
    created = await create(api, inputs)
    assert created["status"] == "starting" and created["logs"] == "" and created["output"] is None
    assert created["input"] == inputs and created["model"] == TRAINER and created["source"] == "api"
    assert created["urls"] == {
        "get": f"{BASE}/v1/predictions/{created['id']}",
        "cancel": f"{BASE}/v1/predictions/{created['id']}/cancel",
        "web": f"{BASE}/p/{created['id']}",
    }
    assert len(created["id"]) == 26 and created["id"].isalnum() and created["id"].islower()
    assert "started_at" not in created and created["metrics"] == {}


async def test_lifecycle_and_metrics(api: httpx.AsyncClient) -> None:
    created = await create(api, await trainer_input(api))
    processing = await wait_until(api, created["urls"]["get"], ("processing", "succeeded"))
    assert "started_at" in processing
    done = await wait_until(api, created["urls"]["get"])
    assert done["status"] == "succeeded" and "completed_at" in done
    assert set(done["metrics"]) == {"predict_time", "total_time"}


async def test_three_version_forms(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    inputs = await trainer_input(api)
    plain = await api.post("/v1/predictions", json={"version": version, "input": inputs})
    named = await api.post("/v1/predictions", json={"version": f"{TRAINER}:{version}", "input": inputs})
    assert plain.status_code == named.status_code == 201
    assert plain.json()["version"] == named.json()["version"] == version
    # `owner/name` is for official models only; the trainer is not one.
    community = await api.post("/v1/predictions", json={"version": TRAINER, "input": inputs})
    assert (community.status_code, community.json()) == (422, INVALID_VERSION)
    unknown = await api.post("/v1/predictions", json={"version": "f" * 64, "input": inputs})
    assert (unknown.status_code, unknown.json()) == (422, INVALID_VERSION)
    missing = await api.post("/v1/predictions", json={"input": inputs})
    assert (missing.status_code, missing.json()) == (422, _problem(("required", "", "version is required")))


async def test_older_version_runs_and_a100_model(api: httpx.AsyncClient) -> None:
    versions = (await api.get(f"/v1/models/{TRAINER}/versions")).json()["results"]
    inputs = await trainer_input(api)
    older = await api.post("/v1/predictions", json={"version": versions[1]["id"], "input": inputs})
    a100_version = await latest_version(api, "simpletuner/advanced-trainer-a100")
    a100 = await api.post("/v1/predictions", json={"version": a100_version, "input": inputs})
    assert older.json()["version"] == versions[1]["id"]
    assert a100.json()["model"] == "simpletuner/advanced-trainer-a100"


@pytest.mark.parametrize("model", [TRAINER, "simpletuner/advanced-trainer-a100", "sandbox/my-lora"])
async def test_models_route_refuses_models_that_are_not_official(api: httpx.AsyncClient, model: str) -> None:
    """Replicate runs `POST /v1/models/{owner}/{name}/predictions` for official models only; none of
    the sandbox's models is one, so by default the route creates nothing."""
    response = await api.post(f"/v1/models/{model}/predictions", json={"input": await trainer_input(api)})
    assert (response.status_code, response.json()) == (422, INVALID_VERSION)
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/predictions")).json()["results"] == []
    missing = await api.post("/v1/models/nobody/nothing/predictions", json={"input": {}})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not found.", "status": 404})


async def test_models_route_lenient_knob_runs_the_latest_version(tmp_path: Path) -> None:
    async with running(fast_config(tmp_path, models_route_official_only=False)) as (_, api):
        response = await api.post(
            f"/v1/models/{TRAINER}/predictions", json={"input": await trainer_input(api)}
        )
        assert response.status_code == 201
        assert response.json()["version"] == await latest_version(api)
        done = await wait_until(api, response.json()["urls"]["get"])
    assert done["status"] == "succeeded", done["error"]


def _problem(*items: tuple[str, str, str]) -> dict[str, Any]:
    """Replicate's 422 body for root-level problems of the request body."""
    return {
        "title": "Input validation failed",
        "status": 422,
        "detail": "".join(f"- {field or '(root)'}: {text}\n" for _, field, text in items),
        "invalid_fields": [
            {"type": kind, "field": field, "description": text} for kind, field, text in items
        ],
    }


CREATE_ROUTES = {
    "predictions": ("/v1/predictions", {"version": version_id(TRAINER, "v2")}),
    "models route": (f"/v1/models/{TRAINER}/predictions", {}),
    "trainings": (
        f"/v1/models/{TRAINER}/versions/{version_id(TRAINER, 'v2')}/trainings",
        {"destination": "sandbox/my-lora"},
    ),
}


@pytest.mark.parametrize("route", list(CREATE_ROUTES))
async def test_create_without_input_is_a_422(tmp_path: Path, route: str) -> None:
    """The spec requires `input` on every create; the body check comes before anything else, so
    even the models route (which would refuse the model) answers it."""
    async with running(fast_config(tmp_path)) as (_, api):
        path, body = CREATE_ROUTES[route]
        response = await api.post(path, json=body)
        assert (response.status_code, response.json()) == (
            422,
            _problem(("required", "", "input is required")),
        )
        assert response.headers["content-type"] == "application/problem+json"
        collection = "/v1/trainings" if route == "trainings" else "/v1/predictions"
        assert (await api.get(collection)).json()["results"] == []


@pytest.mark.parametrize("route", list(CREATE_ROUTES))
async def test_create_with_unknown_top_level_keys_is_a_422(tmp_path: Path, route: str) -> None:
    """`additionalProperties: false`: the official client's legacy `webhook_completed` and any other
    undeclared member are refused, every one named."""
    async with running(fast_config(tmp_path)) as (_, api):
        path, body = CREATE_ROUTES[route]
        response = await api.post(
            path, json={**body, "input": {}, "webhook_completed": "https://example.com/x", "priority": 1}
        )
        assert (response.status_code, response.json()) == (
            422,
            _problem(
                (
                    "additional_property_not_allowed",
                    "",
                    "Additional property webhook_completed is not allowed",
                ),
                ("additional_property_not_allowed", "", "Additional property priority is not allowed"),
            ),
        )
        collection = "/v1/trainings" if route == "trainings" else "/v1/predictions"
        assert (await api.get(collection)).json()["results"] == []


async def test_create_body_problems_are_reported_together(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/predictions", json={"extra": True, "stream": "yes"})
    assert (response.status_code, response.json()) == (
        422,
        _problem(
            ("required", "", "version is required"),
            ("required", "", "input is required"),
            ("additional_property_not_allowed", "", "Additional property extra is not allowed"),
            ("invalid_type", "stream", "Invalid type. Expected: boolean, given: string"),
        ),
    )
    training = await api.post(
        f"/v1/models/{TRAINER}/versions/{version_id(TRAINER, 'v2')}/trainings", json={"input": {}}
    )
    assert (training.status_code, training.json()) == (
        422,
        _problem(("required", "", "destination is required")),
    )
    not_text = await api.post("/v1/predictions", json={"version": 7, "input": {}})
    assert (not_text.status_code, not_text.json()) == (
        422,
        _problem(("invalid_type", "version", "Invalid type. Expected: string, given: integer")),
    )


async def test_input_validation_is_replicates_422(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    response = await api.post(
        "/v1/predictions",
        json={
            "version": version,
            "input": {"max_train_steps": "ten", "return_logs": "yes", "config_json": "{}"},
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "title": "Input validation failed",
        "status": 422,
        "detail": "- input.max_train_steps: Invalid type. Expected: integer, given: string\n"
        "- input.return_logs: Invalid type. Expected: boolean, given: string\n",
        "invalid_fields": [
            {
                "type": "invalid_type",
                "field": "input.max_train_steps",
                "description": "Invalid type. Expected: integer, given: string",
            },
            {
                "type": "invalid_type",
                "field": "input.return_logs",
                "description": "Invalid type. Expected: boolean, given: string",
            },
        ],
    }
    assert (await api.get("/v1/predictions")).json()["results"] == []


@pytest.mark.parametrize(
    "images",
    [
        "not a url",
        "sandbox/my-lora",
        "/v1/files/abc",
        "file:///etc/passwd",
        "ftp://example.com/data.zip",
        "https://",
        "https:///data.zip",
        "https://example.com/data.zip\n",
        "https://example.com/my data.zip",
        "https://example.com:99999/data.zip",
        "data:application/zip;base64",
    ],
)
async def test_an_images_value_that_is_not_a_fetchable_uri_is_a_422(
    api: httpx.AsyncClient, images: str
) -> None:
    """`images` is `format: uri`: refused at create (like Replicate's gojsonschema check), not at run."""
    version = await latest_version(api)
    response = await api.post("/v1/predictions", json={"version": version, "input": {"images": images}})
    assert response.status_code == 422
    assert response.json() == {
        "title": "Input validation failed",
        "status": 422,
        "detail": "- input.images: Does not match format 'uri'\n",
        "invalid_fields": [
            {"type": "format", "field": "input.images", "description": "Does not match format 'uri'"}
        ],
    }
    assert (await api.get("/v1/predictions")).json()["results"] == []


@pytest.mark.parametrize(
    "images",
    [
        "https://example.com/data.zip",
        "http://127.0.0.1:9/data.zip?x=1",
        "HTTPS://EXAMPLE.COM/A.ZIP",
        "data:,",
    ],
)
async def test_http_https_and_data_uris_are_accepted_for_images(api: httpx.AsyncClient, images: str) -> None:
    created = await create(api, {"images": images, "config_json": "{}"})
    assert created["input"]["images"] == images


async def test_run_time_validation_mode(tmp_path: Path) -> None:
    async with running(fast_config(tmp_path, input_validation="run")) as (_, api):
        created = await create(api, {"max_train_steps": 1.5})
        failed = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert (failed["status"], failed["error"]) == (
        "failed",
        "Prediction input failed validation: "
        "input.max_train_steps: Invalid type. Expected: integer, given: number",
    )


async def test_bad_bodies(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    not_json = await api.post("/v1/predictions", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.headers["content-type"] == "application/problem+json"
    bad_filter = await api.post(
        "/v1/predictions", json={"version": version, "input": {}, "webhook_events_filter": ["everything"]}
    )
    assert bad_filter.status_code == 422 and bad_filter.json()["invalid_fields"][0]["type"] == "enum"
    bad_hook = await api.post(
        "/v1/predictions", json={"version": version, "input": {}, "webhook": "not a url"}
    )
    assert bad_hook.status_code == 422
    bare = await api.post("/v1/predictions", json={"version": version, "input": {}, "stream": False})
    assert bare.status_code == 201  # `stream` is declared (deprecated, no effect)


async def test_prefer_wait(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    inputs = await trainer_input(api)
    response = await api.post(
        "/v1/predictions", json={"version": version, "input": inputs}, headers={"Prefer": "wait=30"}
    )
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=30"
    assert response.json()["status"] == "succeeded"
    bare = await api.post(
        "/v1/predictions", json={"version": version, "input": inputs}, headers={"Prefer": "wait"}
    )
    assert bare.headers["preference-applied"] == "wait"
    bad = await api.post(
        "/v1/predictions", json={"version": version, "input": inputs}, headers={"Prefer": "wait=99"}
    )
    assert bad.status_code == 400


async def test_prefer_wait_gives_up_after_n_seconds(api: httpx.AsyncClient) -> None:
    await api.post("/faults", json={"starting_delay": -1})
    response = await api.post(
        "/v1/predictions",
        json={"version": await latest_version(api), "input": {}},
        headers={"Prefer": "wait=1"},
    )
    assert response.status_code == 201 and response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] == "starting"  # not finished within the wait: answered as is


async def test_cancel_after_aborts_before_start(api: httpx.AsyncClient, app: FastAPI) -> None:
    await api.post("/faults", json={"starting_delay": 60})
    created = await api.post(
        "/v1/predictions",
        json={"version": await latest_version(api), "input": await trainer_input(api)},
        headers={"Cancel-After": "1m30s"},
    )
    body = created.json()
    assert body["deadline"] == iso(app.state.sandbox.jobs[body["id"]].created_at + 90)
    app.state.sandbox.clock.advance(91)
    aborted = await wait_until(api, body["urls"]["get"])
    assert aborted["status"] == "aborted" and "started_at" not in aborted
    valid = {"version": await latest_version(api), "input": {}}
    assert (await api.post("/v1/predictions", json=valid, headers={"Cancel-After": "1s"})).status_code == 400
    assert (
        await api.post("/v1/predictions", json=valid, headers={"Cancel-After": "soon"})
    ).status_code == 400


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A sandbox whose runs last minutes: one visible step per 0.01 s, up to 100000 of them."""
    async with running(fast_config(tmp_path, max_simulated_steps=100_000)) as started:
        yield started


async def test_cancel_after_cancels_a_running_job(slow: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, api = slow
    created = await api.post(
        "/v1/predictions",
        json={"version": await latest_version(api), "input": await trainer_input(api, max_train_steps=10**5)},
        headers={"Cancel-After": "30"},
    )
    await wait_until(api, created.json()["urls"]["get"], ("processing",))
    app.state.sandbox.clock.advance(31)
    assert (await wait_until(api, created.json()["urls"]["get"]))["status"] == "canceled"


async def test_cancel_from_processing_and_after_finish(slow: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, api = slow
    created = await create(api, await trainer_input(api, max_train_steps=10**5))
    await wait_until(api, created["urls"]["get"], ("processing",))
    canceled = (await api.post(created["urls"]["cancel"])).json()
    assert (
        canceled["status"] == "canceled"
        and "completed_at" in canceled
        and "predict_time" in canceled["metrics"]
    )
    await asyncio.sleep(0.05)
    again = (await api.post(created["urls"]["cancel"])).json()
    assert again == canceled  # nothing moves after a terminal status


async def test_list_pagination_and_filters(tmp_path: Path) -> None:
    async with running(fast_config(tmp_path, page_size=2, boot_seconds=60)) as (app, api):
        ids = []
        for _ in range(5):
            ids.append((await create(api, {}))["id"])
            app.state.sandbox.clock.advance(60)
        first = (await api.get("/v1/predictions")).json()
        assert [p["id"] for p in first["results"]] == ids[::-1][:2] and first["previous"] is None
        assert first["next"].startswith(f"{BASE}/v1/predictions?cursor=")
        seen = [p["id"] for p in first["results"]]
        page = first
        while page["next"]:
            page = (await api.get(page["next"])).json()
            seen += [p["id"] for p in page["results"]]
        assert seen == ids[::-1]
        back = (await api.get(page["previous"])).json()
        assert [p["id"] for p in back["results"]] == ids[::-1][2:4]
        created = [app.state.sandbox.jobs[i].created_at for i in ids]
        # "created at or after" created_after, "created before" created_before (the spec).
        window = (
            await api.get(
                "/v1/predictions",
                params={"created_after": iso(created[1]), "created_before": iso(created[4])},
            )
        ).json()
        assert [p["id"] for p in window["results"]] == [ids[3], ids[2]]
        assert "created_after=" in window["next"] and "created_before=" in window["next"]
        rest = (await api.get(window["next"])).json()
        assert [p["id"] for p in rest["results"]] == [ids[1]] and rest["next"] is None
        cursor = parse_qs(urlsplit(window["next"]).query)["cursor"][0]
        assert not any(job_id in cursor for job_id in ids) and not cursor.isdigit()  # opaque
        assert (await api.get("/v1/predictions", params={"created_after": "yesterday"})).status_code == 400
        assert (await api.get("/v1/predictions", params={"cursor": "!!!"})).status_code == 400


async def test_trainings(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    inputs = await trainer_input(api)
    path = f"/v1/models/{TRAINER}/versions/{version}/trainings"
    missing = await api.post(path, json={"destination": "sandbox/nothing", "input": inputs})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "The specified training destination does not exist", "status": 404}
    created = (await api.post(path, json={"destination": "sandbox/my-lora", "input": inputs})).json()
    assert created["urls"]["get"] == f"{BASE}/v1/trainings/{created['id']}"
    done = await wait_until(api, f"/v1/trainings/{created['id']}")
    new_version = done["output"]["version"].split(":")[1]
    destination = (await api.get("/v1/models/sandbox/my-lora")).json()
    assert destination["latest_version"]["id"] == new_version
    weights = await api.get(done["output"]["weights"])
    assert weights.status_code == 200 and weights.content[8:].lstrip(b"{").startswith(b'"__metadata__"')
    assert (await api.get(f"/v1/predictions/{created['id']}")).json()["id"] == created["id"]  # both paths
    assert [t["id"] for t in (await api.get("/v1/trainings")).json()["results"]] == [created["id"]]
    assert (await api.get("/v1/predictions")).json()["results"] == []


async def test_training_into_a_model_of_another_account_is_a_403(api: httpx.AsyncClient) -> None:
    """The trainer model exists but belongs to `simpletuner`, not the `sandbox` account: refused
    before anything runs, and the trainer's own versions stay as they were."""
    before = (await api.get(f"/v1/models/{TRAINER}")).json()["latest_version"]
    path = f"/v1/models/{TRAINER}/versions/{before['id']}/trainings"
    refused = await api.post(path, json={"destination": TRAINER, "input": await trainer_input(api)})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "title": "Permission denied",
        "detail": "The specified training destination is owned by another account: a training can only "
        "create versions of a model you own",
        "status": 403,
    }
    assert (await api.get("/v1/trainings")).json()["results"] == []
    assert (await api.get(f"/v1/models/{TRAINER}")).json()["latest_version"] == before


async def test_training_create_url_quirk(tmp_path: Path) -> None:
    config = fast_config(tmp_path, training_create_urls_quirk=True, boot_seconds=60)
    async with running(config) as (_, api):
        version = await latest_version(api)
        path = f"/v1/models/{TRAINER}/versions/{version}/trainings"
        created = (await api.post(path, json={"destination": "sandbox/my-lora", "input": {}})).json()
        fetched = (await api.get(f"/v1/trainings/{created['id']}")).json()
    assert created["urls"]["cancel"] == f"{BASE}/v1/predictions/{created['id']}/cancel"
    assert created["urls"]["get"] == f"{BASE}/v1/predictions/{created['id']}"
    assert fetched["urls"]["get"] == f"{BASE}/v1/trainings/{created['id']}"


async def test_retention_removes_data(app: FastAPI, api: httpx.AsyncClient) -> None:
    created = await api.post(
        f"/v1/models/{TRAINER}/versions/{await latest_version(api)}/trainings",
        json={"destination": "sandbox/my-lora", "input": await trainer_input(api)},
    )
    done = await wait_until(api, f"/v1/trainings/{created.json()['id']}")
    weights = done["output"]["weights"]
    assert (await api.post("/_sandbox/clock", json={"advance": 3500})).json()["data_removed"] == 0
    assert (await api.get(weights)).status_code == 200  # kept for an hour after creation
    moved = (await api.post("/_sandbox/clock", json={"advance": 101})).json()
    assert moved["data_removed"] == 1
    removed = (await api.get(f"/v1/predictions/{done['id']}")).json()
    assert removed["data_removed"] is True and removed.get("output") is None
    assert removed["logs"] == "" and removed["input"] == {} and removed["status"] == "succeeded"
    assert (await api.get(weights)).status_code == 404


async def test_retention_sweeps_in_the_background(tmp_path: Path) -> None:
    async with running(fast_config(tmp_path, retention_seconds=0.0)) as (_, api):
        created = await create(api, await trainer_input(api))

        async def removed() -> dict[str, Any] | None:
            body: dict[str, Any] = (await api.get(f"/v1/predictions/{created['id']}")).json()
            return body if body["data_removed"] else None

        body = await eventually(removed, what="the background sweep removing the data")
    assert body["data_removed"] is True and body["output"] is None and body["status"] == "succeeded"
    assert body["logs"] == "" and body["input"] == {}


TERMINAL_MOVES = st.sampled_from(["succeeded", "failed", "canceled", "aborted"])


@settings(max_examples=60, deadline=None)
@given(moves=st.lists(TERMINAL_MOVES, min_size=1, max_size=5))
def test_nothing_leaves_a_terminal_status(tmp_path_factory: pytest.TempPathFactory, moves: list[str]) -> None:
    """Whatever races (a cancel, a deadline, the run's own end), the first terminal status stays."""
    sandbox = Sandbox(fast_config(tmp_path_factory.mktemp("state-machine")))
    job = Job(id="x" * 26, kind="prediction", model=TRAINER, version="0" * 64, input={}, created_at=0, seq=1)
    results = [sandbox.finish(job, status) for status in moves]
    assert results == [True] + [False] * (len(moves) - 1)
    assert job.status == moves[0] and job.done.is_set()
