"""The sandbox's stand-in for `replicate.delivery`: output files (a training's weights) served
without auth until retention removes them; and the `urls.web` page of a job."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from simpletuner_cloud.sandbox.problems import NOT_FOUND, Problem

router = APIRouter()


@router.get("/delivery/{job_id}/{filename}")
async def get_output_file(request: Request, job_id: str, filename: str) -> FileResponse:
    path = request.app.state.sandbox.output_files.get(job_id)
    if path is None or path.name != filename or not path.is_file():
        raise Problem(404, NOT_FOUND)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)


@router.get("/p/{job_id}", response_class=HTMLResponse)
async def web_page(request: Request, job_id: str) -> HTMLResponse:
    """What `urls.web` points at: a one-line status page (no input, no logs: it needs no token)."""
    job = request.app.state.sandbox.jobs.get(job_id)
    if job is None:
        raise Problem(404, NOT_FOUND)
    text = (
        f"{job.kind} {job.id} of {job.model}: {job.status} (simpletuner-cloud sandbox: no GPUs, no charges)"
    )
    return HTMLResponse(
        f"<!DOCTYPE html><html><head><title>{html.escape(job.id)}</title></head>"
        f"<body><p>{html.escape(text)}</p></body></html>"
    )
