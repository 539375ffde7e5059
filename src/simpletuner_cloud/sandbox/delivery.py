"""The sandbox's stand-in for `replicate.delivery`: output files (a training's weights) served
without auth until retention removes them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from simpletuner_cloud.sandbox.problems import NOT_FOUND, Problem

router = APIRouter()


@router.get("/delivery/{job_id}/{filename}")
async def get_output_file(request: Request, job_id: str, filename: str) -> FileResponse:
    path = request.app.state.sandbox.output_files.get(job_id)
    if path is None or path.name != filename or not path.is_file():
        raise Problem(404, NOT_FOUND)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)
