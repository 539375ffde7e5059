"""Sandbox-only admin routes, outside `/v1`: `/faults` (GET, POST a partial update, DELETE to
reset) and `/_sandbox/...` test control (clock, reset, forgetting a job, signed download URLs,
webhook log, Hub pushes). They need the sandbox token too, because a mounted sandbox may sit
behind a public tunnel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from simpletuner_cloud.sandbox import retention
from simpletuner_cloud.sandbox.auth import require_token
from simpletuner_cloud.sandbox.files import signed_download_url
from simpletuner_cloud.sandbox.problems import (
    FILE_NOT_FOUND,
    NOT_FOUND,
    Problem,
    bad_request,
    validation_problem,
)
from simpletuner_cloud.sandbox.submission import read_body

router = APIRouter(dependencies=[Depends(require_token)])


def _faults_body(request: Request) -> dict[str, Any]:
    return dict(request.app.state.sandbox.faults.model_dump())


@router.get("/faults")
async def get_faults(request: Request) -> dict[str, Any]:
    return _faults_body(request)


@router.post("/faults")
async def set_faults(request: Request) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    update = await read_body(request)
    try:
        sandbox.faults = sandbox.faults.merged(update)
    except ValidationError as exc:
        raise validation_problem(
            [
                {
                    "type": str(error["type"]),
                    "field": ".".join(str(part) for part in error["loc"]) or "(root)",
                    "description": str(error["msg"]),
                }
                for error in exc.errors()
            ]
        ) from exc
    return _faults_body(request)


@router.delete("/faults")
async def reset_faults(request: Request) -> dict[str, Any]:
    from simpletuner_cloud.sandbox.faults import Faults

    request.app.state.sandbox.faults = Faults()
    return _faults_body(request)


@router.post("/_sandbox/clock")
async def move_clock(request: Request) -> dict[str, Any]:
    """`{"advance": seconds}`, `{"freeze": true|false}`; then times out runs past their run
    timeout and runs one retention sweep."""
    sandbox = request.app.state.sandbox
    body = await read_body(request)
    if body.get("freeze") is True:
        sandbox.clock.freeze()
    elif body.get("freeze") is False:
        sandbox.clock.unfreeze()
    if isinstance(body.get("advance"), int | float):
        sandbox.clock.advance(float(body["advance"]))
    timed_out = sandbox.time_out_runs()
    removed = retention.sweep(sandbox)
    return {"now": sandbox.clock.now(), "data_removed": removed, "timed_out": timed_out}


@router.post("/_sandbox/files/{file_id}/download-url")
async def download_url(request: Request, file_id: str) -> dict[str, str]:
    """A signed `GET /v1/files/{id}/download` URL, `{"ttl": seconds}` (default 3600) from now on
    the sandbox clock: how a test gets the kind of link Replicate hands out, without the secret."""
    sandbox = request.app.state.sandbox
    body = await read_body(request)
    ttl = body.get("ttl", 3600)
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
        raise bad_request("ttl must be a positive number of seconds")
    if sandbox.files.get(file_id, sandbox.clock.now()) is None:
        raise Problem(404, FILE_NOT_FOUND)
    return {"url": signed_download_url(sandbox, file_id, float(ttl))}


@router.post("/_sandbox/reset")
async def reset(request: Request) -> dict[str, str]:
    await request.app.state.sandbox.reset()
    return {"status": "reset"}


@router.delete("/_sandbox/jobs/{job_id}")
async def forget_job(request: Request, job_id: str) -> dict[str, str]:
    """Make a tracked id vanish: later GETs answer 404, as a real training once did (replicate-api
    2.7). A run still going is stopped without a terminal status or a webhook."""
    if not await request.app.state.sandbox.forget(job_id):
        raise Problem(404, NOT_FOUND)
    return {"status": "forgotten"}


@router.get("/_sandbox/webhooks")
async def webhook_log(request: Request) -> list[dict[str, Any]]:
    return list(request.app.state.sandbox.webhooks.records)


@router.get("/_sandbox/hub")
async def hub_pushes(request: Request) -> list[dict[str, Any]]:
    return list(request.app.state.sandbox.hub_pushes)
