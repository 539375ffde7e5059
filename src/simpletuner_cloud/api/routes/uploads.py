"""`/api/cloud/data/uploads`: package and upload a dataset to Replicate through this server, with byte
progress as Server-Sent Events (`.../events`) and `reused: true` when a live upload of the same archive
already exists. Consent and the trainer version's inputs are checked before anything is sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from sse_starlette import EventSourceResponse

from simpletuner_cloud.api.deps import DatabaseDep, SessionDep, SettingsDep
from simpletuner_cloud.api.routes.data import DataConsentPreviewRequest
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.services import uploads
from simpletuner_cloud.services.upload_tasks import DatasetUploadResponse, UploadTasks

router = APIRouter(prefix="/data/uploads", tags=["data"])


def get_upload_tasks(request: Request) -> UploadTasks:
    """The app's one registry (created by `create_app`, drained by its lifespan)."""
    return request.app.state.upload_tasks  # type: ignore[no-any-return]


UploadTasksDep = Annotated[UploadTasks, Depends(get_upload_tasks)]


class DatasetUploadRequest(DataConsentPreviewRequest):
    consent: bool = Field(
        False, description='Required (true) when the data consent setting is "ask"; see the preview first.'
    )


@router.post("", status_code=202, response_model=DatasetUploadResponse)
async def start_upload(
    body: DatasetUploadRequest,
    session: SessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
    runtime: RuntimeDep,
    tasks: UploadTasksDep,
) -> DatasetUploadResponse:
    return await uploads.start_dataset_upload(
        session,
        settings,
        database,
        runtime,
        tasks,
        reference=body.config,
        config_json=body.config_json,
        dataloader_json=body.dataloader_json,
        consent=body.consent,
        merge_local=body.merge_local_datasets,
        rename_to_captions=body.rename_to_captions,
    )


@router.get("/{task_id}", response_model=DatasetUploadResponse)
async def get_upload(task_id: str, tasks: UploadTasksDep) -> DatasetUploadResponse:
    return await uploads.get_upload_task(tasks, task_id)


@router.get("/{task_id}/events")
async def upload_events(task_id: str, tasks: UploadTasksDep) -> EventSourceResponse:
    """`progress` events (`state`, `bytes_done`, `bytes_total`), then `succeeded` or `failed`."""
    return EventSourceResponse(await uploads.upload_events(tasks, task_id))
