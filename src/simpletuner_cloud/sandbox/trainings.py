"""`/v1/trainings` and the training create route on a model version. Trainings run the same
simulated trainer; on success the destination model gets a new version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from simpletuner_cloud.sandbox.predictions import find_job, list_jobs
from simpletuner_cloud.sandbox.problems import (
    DESTINATION_NOT_FOUND,
    DESTINATION_NOT_OWNED,
    INVALID_VERSION,
    NOT_FOUND,
    Problem,
)
from simpletuner_cloud.sandbox.submission import TRAINING_FIELDS, check_body_fields, create_job, read_body

router = APIRouter()


@router.post("/v1/models/{owner}/{name}/versions/{vid}/trainings", status_code=201)
async def create_training(request: Request, owner: str, name: str, vid: str) -> JSONResponse:
    sandbox = request.app.state.sandbox
    body = await read_body(request)
    check_body_fields(body, TRAINING_FIELDS, required=("destination", "input"))
    model = sandbox.catalogue.get(f"{owner}/{name}")
    if model is None:
        raise Problem(404, NOT_FOUND)
    version = model.version(vid)
    if version is None or "TrainingInput" not in version.openapi_schema.get("components", {}).get(
        "schemas", {}
    ):
        raise Problem(422, INVALID_VERSION)
    destination = body["destination"]
    target = sandbox.catalogue.get(destination)
    if target is None:
        raise Problem(404, DESTINATION_NOT_FOUND)
    # The spec: "an existing model owned by the user or organization making the API request".
    if target.owner != sandbox.config.account_username:
        raise Problem(403, DESTINATION_NOT_OWNED)
    return await create_job(
        request, body, kind="training", model=model, version=version, destination=destination
    )


@router.get("/v1/trainings")
async def list_trainings(request: Request) -> dict[str, Any]:
    return list_jobs(request, "training")


@router.get("/v1/trainings/{job_id}")
async def get_training(request: Request, job_id: str) -> dict[str, Any]:
    return request.app.state.sandbox.render(find_job(request, job_id, "training"))


@router.post("/v1/trainings/{job_id}/cancel")
async def cancel_training(request: Request, job_id: str) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    job = find_job(request, job_id, "training")
    sandbox.cancel(job)
    return sandbox.render(job)
