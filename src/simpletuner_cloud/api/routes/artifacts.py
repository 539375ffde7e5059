"""`/api/cloud/jobs/{id}/artifacts`: a job's deliveries and files (validation samples grouped by
step, the retention countdown), one file's download (behind the management login like the rest of
`/api/cloud`), and a delivery check on demand. Thin: parse, call one service function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from simpletuner_cloud.api.deps import DatabaseDep, SessionDep, SettingsDep
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.services.artifacts import (
    ArtifactsView,
    DeliveryView,
    Destination,
    delivery_view,
    job_artifacts,
    open_artifact,
)
from simpletuner_cloud.services.deliveries import retry_delivery
from simpletuner_cloud.services.publishing import load_publishing
from simpletuner_cloud.store import deliveries as ledger

router = APIRouter(prefix="/jobs", tags=["artifacts"])


@router.get("/{job_id}/artifacts", response_model=ArtifactsView)
async def list_artifacts(
    job_id: str,
    session: SessionDep,
    caches: Annotated[bool, Query(description="Also list the trainer's cache files.")] = False,
) -> ArtifactsView:
    return await job_artifacts(session, job_id, include_caches=caches)


@router.get(
    "/{job_id}/artifacts/{name:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."}},
)
async def download_artifact(
    job_id: str,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    destination: Annotated[Destination | None, Query(description="Which delivery's copy.")] = None,
) -> Response:
    publishing = await load_publishing(session, settings, runtime.environ)
    found = await open_artifact(session, settings, publishing, job_id, name, destination)
    await session.rollback()  # no transaction stays open while the file streams
    if found.path is not None:
        return FileResponse(found.path, filename=found.filename, media_type="application/octet-stream")
    assert found.chunks is not None
    disposition = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    return StreamingResponse(found.chunks, media_type="application/octet-stream", headers=disposition)


@router.post("/{job_id}/deliveries/{destination}/retry", response_model=DeliveryView)
async def retry(
    job_id: str, destination: Destination, request: Request, database: DatabaseDep
) -> DeliveryView:
    """Check the delivery again now (after fixing a token, keys or files)."""
    delivery = await retry_delivery(database, job_id, destination)
    request.app.state.worker.wake()
    async with database.session() as session:
        rows = await ledger.list_artifacts(session, delivery_id=delivery.id)
    return delivery_view(delivery, rows)
