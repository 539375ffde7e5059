"""The answer shapes of the jobs API, defined once: the services build them, the routes declare them
as response models, the CLI and the UI read them. Money is a decimal string, never a float."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from simpletuner_cloud.domain.estimate import projected_cost
from simpletuner_cloud.domain.hardware import HardwareCatalogue, UnknownHardware
from simpletuner_cloud.domain.jobs import JobStatus, is_terminal
from simpletuner_cloud.domain.progress import TrainingProgress
from simpletuner_cloud.store.tables import JobEventRow, JobMetricRow, JobRow

REPLICATE_WEB = "https://replicate.com/p/"


class ErrorView(BaseModel):
    code: str
    message: str
    hint: str


class ProgressView(BaseModel):
    phase: Literal["waiting", "packaging", "uploading", "submitting", "queued", "training", "finished"]
    bytes_done: int | None = None
    bytes_total: int | None = None
    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    eta_seconds: int | None = None
    seconds_per_step: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    stage: str | None = None


class CostView(BaseModel):
    usd_per_hour: str = Field(description="The job's own hardware rate.")
    estimated_usd: str | None
    so_far_usd: str | None = Field(description="Accrued from started_at while running; the final cost after.")
    final_usd: str | None
    projected_usd: str | None = Field(description="A running job's final cost at its measured step rate.")
    billed_seconds: float | None


class EventView(BaseModel):
    id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    message: str | None
    data: dict[str, Any] | None


class JobView(BaseModel):
    id: str
    status: JobStatus
    provider_status: str | None
    prediction_id: str | None
    config: str
    hardware: str
    model: str
    version: str | None
    delivery: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    progress: ProgressView
    cost: CostView
    output: Any | None
    error: ErrorView | None
    notice: dict[str, Any] | None
    warnings: list[str]
    cancel_requested: bool
    replicate_url: str | None
    timeline: list[EventView] | None = None


class JobListView(BaseModel):
    jobs: list[JobView]
    total: int
    next_cursor: str | None


class Range(BaseModel):
    low: str
    high: str


class SecondsRange(BaseModel):
    low: int
    high: int


class FloatRange(BaseModel):
    low: float
    high: float


class EstimateBasis(BaseModel):
    source: Literal["table", "history"]
    past_jobs: int
    description: str
    seconds_per_step: FloatRange
    startup_seconds: FloatRange
    model_family: str
    full_fine_tune: bool
    resolution: int
    validations: int
    checkpoints: int


class EstimateView(BaseModel):
    hardware: str
    usd_per_hour: str
    steps: int
    cost_usd: Range
    duration_seconds: SecondsRange
    basis: EstimateBasis


class SubmitResult(BaseModel):
    """Ours (`job`, `warnings`) beside SimpleTuner's own API fields, so its scripts keep working."""

    job: JobView
    warnings: list[str]
    success: bool = True
    job_id: str
    status: JobStatus
    idempotent_hit: bool
    cost_limit_warning: str | None = None
    estimate: EstimateView | None = None


class LogsView(BaseModel):
    job_id: str
    offset: int = Field(description="Where `text` starts in the full log.")
    next_offset: int = Field(description="Pass as `after` to read what comes next.")
    size: int
    text: str


class MetricPointView(BaseModel):
    step: int
    loss: float | None
    learning_rate: float | None


class MetricsView(BaseModel):
    job_id: str
    points: list[MetricPointView]


class CancelResult(BaseModel):
    job: JobView
    canceled_at_replicate: bool
    message: str


class DeleteResult(BaseModel):
    deleted: str
    not_deleted: list[str]


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.000001')).normalize():f}"


def rate_of(catalogue: HardwareCatalogue, hardware: str) -> Decimal:
    try:
        return catalogue.get(hardware).usd_per_second
    except UnknownHardware:
        return catalogue.price_per_second(hardware)


def job_view(
    job: JobRow,
    catalogue: HardwareCatalogue,
    now: datetime,
    events: list[JobEventRow] | None = None,
) -> JobView:
    rate = rate_of(catalogue, job.hardware)
    return JobView(
        id=job.id,
        status=JobStatus(job.status),
        provider_status=job.provider_status,
        prediction_id=job.prediction_id,
        config=job.config_name,
        hardware=job.hardware,
        model=job.model,
        version=job.version,
        delivery=job.delivery,
        created_at=job.created_at,
        updated_at=job.updated_at,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        progress=progress_view(job),
        cost=cost_view(job, rate, now),
        output=job.output,
        error=ErrorView(code=job.error_code or "failed", message=job.error or "", hint=job.error_hint or "")
        if job.error or job.error_code
        else None,
        notice=job.notice,
        warnings=list(job.warnings or []),
        cancel_requested=job.cancel_requested_at is not None,
        replicate_url=f"{REPLICATE_WEB}{job.prediction_id}" if job.prediction_id else None,
        timeline=[event_view(e) for e in events] if events is not None else None,
    )


def progress_view(job: JobRow) -> ProgressView:
    data = dict(job.progress or {})
    training = TrainingProgress.from_dict(data)
    status = JobStatus(job.status)
    phase: Any = {
        JobStatus.CREATED: "waiting",
        JobStatus.PACKAGING: "packaging",
        JobStatus.UPLOADING: "uploading",
        JobStatus.SUBMITTING: "submitting",
        JobStatus.QUEUED: "queued",
        JobStatus.RUNNING: "training",
    }.get(status, "finished")
    return ProgressView(
        phase=phase,
        bytes_done=data.get("bytes_done"),
        bytes_total=data.get("bytes_total"),
        step=training.step,
        total_steps=training.total_steps,
        percent=training.percent,
        eta_seconds=training.eta_seconds if status is JobStatus.RUNNING else None,
        seconds_per_step=training.seconds_per_step,
        loss=training.loss,
        learning_rate=training.learning_rate,
        epoch=training.epoch,
        epochs=training.epochs,
        stage=training.stage,
    )


def accrued_cost(job: JobRow, rate: Decimal, now: datetime) -> tuple[Decimal | None, float | None]:
    """(cost, seconds): the final cost once recorded; while running, the time since `started_at`."""
    if job.actual_cost_usd is not None:
        seconds = float(job.actual_cost_usd / rate) if rate else None
        return job.actual_cost_usd, seconds
    if job.started_at is None or is_terminal(job.status):
        return (Decimal(0), 0.0) if is_terminal(job.status) else (None, None)
    seconds = max(0.0, (now - job.started_at).total_seconds())
    return rate * Decimal(str(round(seconds, 3))), seconds


def cost_view(job: JobRow, rate: Decimal, now: datetime) -> CostView:
    so_far, seconds = accrued_cost(job, rate, now)
    projected = None
    if JobStatus(job.status) is JobStatus.RUNNING and seconds is not None:
        training = TrainingProgress.from_dict(job.progress)
        projected = projected_cost(
            accrued_seconds=seconds,
            step=training.step,
            total_steps=training.total_steps,
            seconds_per_step=training.seconds_per_step,
            usd_per_second=rate,
        )
    return CostView(
        usd_per_hour=money(rate * 3600) or "0",
        estimated_usd=money(job.estimated_cost_usd),
        so_far_usd=money(so_far),
        final_usd=money(job.actual_cost_usd) if is_terminal(job.status) else None,
        projected_usd=money(projected),
        billed_seconds=round(seconds, 3) if seconds is not None else None,
    )


def event_view(event: JobEventRow) -> EventView:
    return EventView(
        id=event.id,
        at=event.at,
        kind=event.kind,
        from_status=event.from_status,
        to_status=event.to_status,
        message=event.message,
        data=event.data,
    )


def metric_view(row: JobMetricRow) -> MetricPointView:
    return MetricPointView(step=row.step, loss=row.loss, learning_rate=row.learning_rate)
