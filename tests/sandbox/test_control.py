"""The sandbox's test control outside `/v1` (`/_sandbox/...`): the clock, reset, and a tracked id
that vanishes."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI

from tests.sandbox.conftest import create, trainer_input, upload, wait_until
from tests.sandbox.test_api_basics import UNAUTHENTICATED

NOT_FOUND = {"detail": "Not found.", "status": 404}


async def test_clock_freezes_and_advances(api: httpx.AsyncClient) -> None:
    frozen = (await api.post("/_sandbox/clock", json={"freeze": True})).json()["now"]
    assert (await api.post("/_sandbox/clock", json={})).json()["now"] == frozen
    created = await create(api, {})
    assert created["created_at"] == (await create(api, {}))["created_at"]  # time stands still
    moved = (await api.post("/_sandbox/clock", json={"advance": 90})).json()["now"]
    assert moved == frozen + 90
    thawed = (await api.post("/_sandbox/clock", json={"freeze": False})).json()["now"]
    assert thawed >= moved


async def test_reset_forgets_jobs_files_faults_and_time(app: FastAPI, api: httpx.AsyncClient) -> None:
    uploaded = await upload(api)
    created = await create(api, await trainer_input(api))
    await api.post("/faults", json={"fail_at_step": 2})
    await api.post("/_sandbox/clock", json={"advance": 600})
    assert (await api.post("/_sandbox/reset")).json() == {"status": "reset"}
    assert (await api.get(f"/v1/predictions/{created['id']}")).json() == NOT_FOUND
    assert (await api.get(f"/v1/files/{uploaded['id']}")).status_code == 404
    assert (await api.get("/faults")).json()["fail_at_step"] is None
    assert abs(app.state.sandbox.clock.now() - time.time()) < 60  # the 600 s offset is gone
    assert (await api.get("/_sandbox/webhooks")).json() == []


async def test_a_tracked_id_can_start_answering_404(api: httpx.AsyncClient) -> None:
    await api.post("/faults", json={"starting_delay": -1})
    stuck = await create(api, {})
    assert (await api.get(stuck["urls"]["get"])).json()["status"] == "starting"
    assert (await api.delete(f"/_sandbox/jobs/{stuck['id']}")).json() == {"status": "forgotten"}
    for response in (await api.get(stuck["urls"]["get"]), await api.post(stuck["urls"]["cancel"])):
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert (await api.get("/v1/predictions")).json()["results"] == []
    assert (await api.delete(f"/_sandbox/jobs/{stuck['id']}")).json() == NOT_FOUND
    await api.post("/faults", json={"starting_delay": 0})  # the sandbox itself carries on
    assert (await wait_until(api, (await create(api, {}))["urls"]["get"]))["status"] == "failed"


async def test_control_needs_the_token(api: httpx.AsyncClient) -> None:
    for method, path in (("POST", "/_sandbox/clock"), ("POST", "/_sandbox/reset"), ("GET", "/_sandbox/hub")):
        response = await api.request(method, path, headers={"Authorization": "Bearer nope"})
        assert (response.status_code, response.json()) == (401, UNAUTHENTICATED)
