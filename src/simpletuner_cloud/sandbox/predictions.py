"""`/v1/predictions` and `/v1/models/{owner}/{name}/predictions`: create (three version forms),
get, list with cursors and date filters, cancel. A training id also resolves here."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from simpletuner_cloud.sandbox.catalogue import Model, Version
from simpletuner_cloud.sandbox.clock import parse_iso
from simpletuner_cloud.sandbox.jobs import Job, job_json
from simpletuner_cloud.sandbox.pages import paginate
from simpletuner_cloud.sandbox.problems import (
    INVALID_VERSION,
    NOT_FOUND,
    Problem,
    bad_request,
    validation_problem,
)
from simpletuner_cloud.sandbox.submission import (
    MODEL_PREDICTION_FIELDS,
    PREDICTION_FIELDS,
    check_body_fields,
    create_job,
    invalid_type,
    read_body,
)

router = APIRouter()

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def resolve_version(request: Request, ref: Any) -> tuple[Model, Version]:
    catalogue = request.app.state.sandbox.catalogue
    if not isinstance(ref, str):
        raise validation_problem([invalid_type("version", "string", ref)])
    name, _, vid = ref.partition(":")
    if _HEX64.match(ref):
        found = catalogue.find_version(ref)
        if found is not None:
            return found
    elif vid and _HEX64.match(vid):
        model = catalogue.get(name)
        version = model.version(vid) if model else None
        if model is not None and version is not None:
            return model, version
    elif "/" in ref and not vid:
        model = catalogue.get(ref)
        if model is not None and model.is_official and model.versions:
            return model, model.versions[0]
    raise Problem(422, INVALID_VERSION)


@router.post("/v1/predictions", status_code=201)
async def create_prediction(request: Request) -> JSONResponse:
    body = await read_body(request)
    check_body_fields(body, PREDICTION_FIELDS, required=("version", "input"))
    model, version = resolve_version(request, body["version"])
    return await create_job(request, body, kind="prediction", model=model, version=version)


@router.post("/v1/models/{owner}/{name}/predictions", status_code=201)
async def create_model_prediction(request: Request, owner: str, name: str) -> JSONResponse:
    sandbox = request.app.state.sandbox
    body = await read_body(request)
    check_body_fields(body, MODEL_PREDICTION_FIELDS, required=("input",))
    model = sandbox.catalogue.get(f"{owner}/{name}")
    if model is None:
        raise Problem(404, NOT_FOUND)
    # Replicate runs this route for official models only; for any other model it answers like the
    # `owner/name` version form does (docs/decisions.md). The lenient knob lets a test run it anyway.
    if not model.versions or (sandbox.config.models_route_official_only and not model.is_official):
        raise Problem(422, INVALID_VERSION)
    return await create_job(
        request, body, kind="prediction", model=model, version=model.versions[0], via_models_route=True
    )


def _date_filter(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    parsed = parse_iso(raw)
    if parsed is None:
        raise bad_request(f"{name} must be an ISO 8601 date-time")
    return parsed


def _micros(timestamp: float) -> int:
    """Compare at the precision the API shows, so a job's own `created_at` is an exact bound."""
    return round(timestamp * 1_000_000)


def list_jobs(request: Request, kind: str) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    after, before = _date_filter(request, "created_after"), _date_filter(request, "created_before")
    jobs = [
        job
        for job in sorted(sandbox.jobs.values(), key=lambda j: j.seq, reverse=True)
        if job.kind == kind
        # The spec: "created at or after" `created_after`, "created before" `created_before`.
        and (after is None or _micros(job.created_at) >= _micros(after))
        and (before is None or _micros(job.created_at) < _micros(before))
    ]
    return paginate(
        jobs,
        seq_of=lambda job: job.seq,
        render=sandbox.render,
        url=f"{sandbox.config.base_url}/v1/{kind}s",
        query=dict(request.query_params),
        page_size=sandbox.config.page_size,
    )


def find_job(request: Request, job_id: str, kind: str | None = None) -> Job:
    job = request.app.state.sandbox.jobs.get(job_id)
    if job is None or (kind is not None and job.kind != kind):
        raise Problem(404, NOT_FOUND)
    return job


@router.get("/v1/predictions")
async def list_predictions(request: Request) -> dict[str, Any]:
    if request.query_params.get("source") == "web":  # nothing is ever created on the web here
        return {"next": None, "previous": None, "results": []}
    return list_jobs(request, "prediction")


@router.get("/v1/predictions/{job_id}")
async def get_prediction(request: Request, job_id: str) -> dict[str, Any]:
    job = find_job(request, job_id)
    return job_json(job, request.app.state.sandbox.config.base_url, as_prediction=True)


@router.post("/v1/predictions/{job_id}/cancel")
async def cancel_prediction(request: Request, job_id: str) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    job = find_job(request, job_id)
    sandbox.cancel(job)
    return job_json(job, sandbox.config.base_url, as_prediction=True)
