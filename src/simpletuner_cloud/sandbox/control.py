"""Sandbox-only admin routes, outside `/v1`: `/faults` (GET, POST a partial update, DELETE to
reset) and `/_sandbox/...` test control (clock, reset, forgetting a job, webhook log, Hub pushes).
They need the sandbox token too, because a mounted sandbox may sit behind a public tunnel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from simpletuner_cloud.sandbox import retention
from simpletuner_cloud.sandbox.auth import require_token
from simpletuner_cloud.sandbox.problems import NOT_FOUND, Problem, validation_problem
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
    """`{"advance": seconds}`, `{"freeze": true|false}`; then runs one retention sweep."""
    sandbox = request.app.state.sandbox
    body = await read_body(request)
    if body.get("freeze") is True:
        sandbox.clock.freeze()
    elif body.get("freeze") is False:
        sandbox.clock.unfreeze()
    if isinstance(body.get("advance"), int | float):
        sandbox.clock.advance(float(body["advance"]))
    removed = retention.sweep(sandbox)
    return {"now": sandbox.clock.now(), "data_removed": removed}


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
