"""`/api/cloud/jobs`: submit (the seed's `POST /api/cloud/jobs/submit`), list, show, logs, metrics,
cancel and delete. Thin: parse, call one service function, answer with its typed result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simpletuner_cloud.api.deps import SessionDep, SettingsDep
from simpletuner_cloud.api.routes.providers import RuntimeDep
from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.services import job_control, job_queries
from simpletuner_cloud.services.job_views import (
    CancelResult,
    DeleteResult,
    JobListView,
    JobView,
    LogsView,
    MetricsView,
    SubmitResult,
)
from simpletuner_cloud.services.provider_fields import JobWebhookUrl
from simpletuner_cloud.services.submit import SubmitJob, submit_job

router = APIRouter(prefix="/jobs", tags=["jobs"])


class SubmitJobRequest(BaseModel):
    """Our fields, and SimpleTuner's own API names beside them (`config_name_to_load`, `config` as an
    object, `dataloader_config`, `hardware_profile`, `webhook_url`), so its scripts keep working."""

    model_config = ConfigDict(extra="forbid")

    config: str | dict[str, Any] | None = Field(
        None, description="Environment name or path; or (SimpleTuner's API) the config.json object itself."
    )
    config_name_to_load: str | None = Field(
        None, max_length=4096, description="SimpleTuner's name for `config`."
    )
    config_json: dict[str, Any] | None = Field(None, description="Inline config.json.")
    dataloader_json: list[dict[str, Any]] | dict[str, Any] | None = Field(
        None, description="Inline dataset list."
    )
    dataloader_config: list[dict[str, Any]] | dict[str, Any] | None = Field(
        None, description="SimpleTuner's name for `dataloader_json`."
    )
    merge_local_datasets: bool = False
    rename_to_captions: bool = False
    hardware: str | None = Field(None, max_length=64, description="`l40s` (default) or `a100`.")
    hardware_profile: str | None = Field(
        None, max_length=64, description="SimpleTuner's name for `hardware`."
    )
    delivery: Literal["hub", "s3", "local", "none"] | None = None
    hub_model_id: str | None = Field(None, max_length=200, pattern=r"^[\w.-]+/[\w.-]+$")
    hub_private: bool | None = Field(None, description="Create the Hub repo private (default: Publishing's).")
    consent: bool = False
    max_train_steps: int | None = Field(None, ge=1, le=10_000_000)
    webhook_url: JobWebhookUrl | None = Field(
        None, max_length=2048, description="Send this job's webhooks here instead (an http(s) URL)."
    )
    idempotency_key: str | None = Field(None, max_length=255)
    provider: Literal["replicate"] | None = Field(None, description="SimpleTuner's API; only replicate.")

    @model_validator(mode="after")
    def _one_source(self) -> SubmitJobRequest:
        name = self.config_name_to_load or (self.config if isinstance(self.config, str) else None)
        inline_config = (
            self.config_json
            if self.config_json is not None
            else (self.config if isinstance(self.config, dict) else None)
        )
        loader = self.dataloader_json if self.dataloader_json is not None else self.dataloader_config
        if bool(name) == (inline_config is not None or loader is not None):
            raise ValueError(
                "give either `config` (an environment name or path) or both `config_json` and "
                "`dataloader_json`"
            )
        if name is None and (inline_config is None or loader is None):
            raise ValueError("inline configs need both `config_json` and `dataloader_json`")
        return self

    def to_service(self, header_key: str | None) -> SubmitJob:
        name = self.config_name_to_load or (self.config if isinstance(self.config, str) else None)
        inline = (
            self.config_json
            if self.config_json is not None
            else (self.config if isinstance(self.config, dict) else None)
        )
        return SubmitJob(
            config=name,
            config_json=inline,
            dataloader_json=self.dataloader_json
            if self.dataloader_json is not None
            else self.dataloader_config,
            merge_local_datasets=self.merge_local_datasets,
            rename_to_captions=self.rename_to_captions,
            hardware=self.hardware or self.hardware_profile,
            delivery=self.delivery,
            hub_model_id=self.hub_model_id,
            hub_private=self.hub_private,
            consent=self.consent,
            webhook_url=self.webhook_url,
            max_train_steps=self.max_train_steps,
            idempotency_key=header_key or self.idempotency_key,
        )


@router.post("/submit", status_code=201, response_model=SubmitResult)
async def submit(
    body: SubmitJobRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> SubmitResult:
    """201 for a new job; 200 with the same job for a repeated idempotency key."""
    result, created = await submit_job(session, settings, runtime, body.to_service(idempotency_key))
    if created:
        request.app.state.worker.wake()
    else:
        response.status_code = 200
    return result


@router.get("", response_model=JobListView)
async def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[list[JobStatus] | None, Query(description="Repeat for several.")] = None,
    hardware: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the id, config or prediction id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
    ] = None,
) -> JobListView:
    return await job_queries.list_jobs(
        session, settings, status=status, hardware=hardware, text=q, limit=limit, cursor=cursor
    )


@router.get("/{job_id}", response_model=JobView)
async def get_job(job_id: str, session: SessionDep, settings: SettingsDep) -> JobView:
    return await job_queries.get_job(session, settings, job_id)


@router.get("/{job_id}/logs", response_model=LogsView)
async def get_logs(
    job_id: str,
    session: SessionDep,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="The last N lines.")] = None,
    after: Annotated[int | None, Query(ge=0, description="From this character offset on.")] = None,
) -> LogsView:
    return await job_queries.get_logs(session, job_id, tail=tail, after=after)


@router.get("/{job_id}/metrics", response_model=MetricsView)
async def get_metrics(job_id: str, session: SessionDep) -> MetricsView:
    return await job_queries.get_metrics(session, job_id)


@router.post("/{job_id}/cancel", response_model=CancelResult)
async def cancel(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> CancelResult:
    result = await job_control.cancel_job(session, settings, runtime, job_id)
    request.app.state.worker.wake()
    return result


@router.delete("/{job_id}", response_model=DeleteResult)
async def delete(job_id: str, session: SessionDep) -> DeleteResult:
    return await job_control.delete_job(session, job_id)
