"""Apply what Replicate says about a job's prediction (a polled GET, a list entry, or a webhook's
body): status forward-only, new log text appended once, progress and the step/loss/lr series parsed
from it, output, and at the end the final cost from `metrics.predict_time` at the job's own hardware
rate plus a failure's code and hint. Safe for concurrent appliers without a lease: every write is a
compare-and-set (status, logs offset) or idempotent (metrics upsert, same output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.failures import classify_failure
from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.domain.jobs import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, map_replicate_status
from simpletuner_cloud.domain.progress import MetricPoint, TrainingProgress, parse_logs
from simpletuner_cloud.errors import InvalidTransition
from simpletuner_cloud.replicate.files import parse_time
from simpletuner_cloud.security.redaction import mask
from simpletuner_cloud.services.job_views import rate_of
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow

_ACTIVE = [status.value for status in ACTIVE_STATUSES]
LOG_TAIL_FOR_DIAGNOSIS = 20_000  # characters of the log end read to tell a failure's kind


@dataclass(frozen=True)
class Applied:
    status_changed: bool
    new_logs: str
    status: JobStatus
    provider_status: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


async def apply_prediction(
    session: AsyncSession,
    job_id: str,
    prediction: dict[str, Any],
    catalogue: HardwareCatalogue,
    *,
    source: str,
    now: datetime | None = None,
    job: JobRow | None = None,
    also: dict[str, Any] | None = None,
) -> Applied:
    """Flushes; the caller commits (a webhook commits it with the delivery record).

    The job is read once (or taken as `job`, this session's copy: a stale copy costs a retry, never a
    wrong write), writes that change nothing are skipped, and the plain columns in `also` (the
    webhook's `last_webhook_at`) ride along with the first write made. Announces a change itself."""
    now = now or utcnow()
    job = job if job is not None else await repo.read_job(session, job_id)  # the session's one copy
    pending: dict[str, Any] = dict(also or {})  # plain columns still to write
    prediction_id = str(prediction.get("id") or "")
    if prediction_id and job.prediction_id is None:
        recorded = await repo.record_prediction_id(session, job_id, prediction_id)
        job = await repo.read_job(session, job_id)  # rare (found before the create's answer)
        if not recorded:  # another job holds this prediction: nothing of it is this job's
            return Applied(False, "", JobStatus(job.status), job.provider_status)
    elif prediction_id and job.prediction_id != prediction_id:
        return Applied(False, "", JobStatus(job.status), job.provider_status)  # another job's prediction
    raw_status = str(prediction.get("status") or "") or None
    target = map_replicate_status(raw_status)

    logs = prediction.get("logs")
    new_logs = ""
    if isinstance(logs, str) and logs:
        new_logs = await _append_logs(session, job, logs, pending)
    output = prediction.get("output")

    changed = False
    if target is None:
        if raw_status and raw_status != job.provider_status:
            pending["provider_status"] = raw_status
            await repo.add_event(
                session, job_id, "provider_status", message=f"Replicate says {raw_status!r}."
            )
    else:
        fields = _fields_for(job, target, prediction, catalogue, output)
        try:
            job, changed = await repo.apply_status(
                session,
                job_id,
                target,
                provider_status=raw_status,
                message=_message(target, raw_status, source),
                data={"source": source},
                at=now,
                job=job,
                **fields,
            )
        except InvalidTransition as conflict:
            # Finished here one way (a local cancel), there another: keep ours, say so on the timeline.
            await repo.add_event(
                session, job_id, "conflict", message=conflict.message, data={"provider_status": raw_status}
            )
            if output is not None and job.output is None:
                pending["output"] = output
    if output is not None and target is not None and target not in TERMINAL_STATUSES and output != job.output:
        # A snapshot of the run (a poll read before the end, a replayed `output` webhook) never
        # rewinds a finished job's output: written only while the job is still active.
        if await repo.set_fields(session, job_id, job=job, while_status=_ACTIVE, output=output):
            await repo.add_event(session, job_id, "output", data={"output": output})
    if pending:
        await repo.set_fields(session, job_id, job=job, **pending)
    if changed or new_logs:
        await announce(session, job_id)
    return Applied(changed, new_logs, JobStatus(job.status), raw_status)


@dataclass(frozen=True)
class ProgressRead:
    """The progress a job's cumulative log text says, against what the job held before it."""

    previous: TrainingProgress
    progress: TrainingProgress
    points: list[MetricPoint]
    columns: dict[str, Any]  # the job's columns that change with it (none when nothing does)

    @property
    def milestone(self) -> bool:
        """A new step or stage: worth a `progress` event on the timeline."""
        before, now = self.previous, self.progress
        return now != before and (now.step != before.step or now.stage != before.stage)

    @property
    def readings(self) -> list[tuple[int, float | None, float | None]]:
        return [(p.step, p.loss, p.learning_rate) for p in self.points]


def read_progress(row_progress: dict[str, Any] | None, logs: str) -> ProgressRead:
    previous = TrainingProgress.from_dict(row_progress)
    progress, points = parse_logs(logs, previous)
    columns: dict[str, Any] = {}
    if progress != previous:
        columns = {"progress": {**(row_progress or {}), **progress.as_dict()}, "updated_at": utcnow()}
    return ProgressRead(previous, progress, points, columns)


def same_status_columns(
    job: JobRow, prediction: dict[str, Any], catalogue: HardwareCatalogue, now: datetime
) -> dict[str, Any] | None:
    """For a delivery that keeps `job` in its (non-terminal) status with the same output, the columns
    `apply_prediction` would write besides the log's (the provider's status word, `started_at`...;
    none when the job holds them); None for any other delivery (a status move, a new output, a status
    word we do not know, another prediction). Such deliveries may be applied in bulk with others
    (`services/webhook_bulk.py`); the rest go through `apply_prediction`."""
    if not job.prediction_id or str(prediction.get("id") or "") != job.prediction_id:
        return None
    raw_status = str(prediction.get("status") or "") or None
    target = map_replicate_status(raw_status)
    if target is None or target.value != job.status or target in TERMINAL_STATUSES:
        return None
    output = prediction.get("output")
    if output is not None and output != job.output:
        return None
    fields = _fields_for(job, target, prediction, catalogue, output)
    values = repo.status_values(job, target, now, provider_status=raw_status, **fields)
    return {} if repo.holds(job, values, skip=("updated_at",)) else values


async def _append_logs(session: AsyncSession, job: JobRow, logs: str, pending: dict[str, Any]) -> str:
    """Append the new log text with the progress parsed from it in one compare-and-set (only the
    writer whose chunk lands writes progress, so a later snapshot's progress is never overwritten),
    then upsert the step/loss/lr readings and note a new step or stage on the timeline."""
    parsed: list[ProgressRead] = []

    def with_progress(row: JobRow) -> dict[str, Any]:
        read = read_progress(row.progress, logs)
        parsed[:] = [read]
        return {**pending, **read.columns}

    new_logs = await repo.append_logs(session, job.id, logs, job=job, fields=with_progress)
    if not new_logs:
        return ""
    pending.clear()  # written with the chunk
    read = parsed[0]
    if read.points:
        await repo.record_metrics(session, job.id, read.readings)
    if read.milestone:
        await repo.add_event(session, job.id, "progress", data=read.progress.as_dict())
    return new_logs


def _fields_for(
    job: JobRow,
    target: JobStatus,
    prediction: dict[str, Any],
    catalogue: HardwareCatalogue,
    output: Any,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if job.submitted_at is None:  # found through a webhook or the list before the create's answer
        fields["submitted_at"] = parse_time(prediction.get("created_at")) or utcnow()
    started = parse_time(prediction.get("started_at"))
    if target is JobStatus.RUNNING and started is not None:
        fields["started_at"] = started
    if target not in TERMINAL_STATUSES:
        return fields
    completed = parse_time(prediction.get("completed_at"))
    if completed is not None:
        fields["completed_at"] = completed
    if started is not None and job.started_at is None:
        fields["started_at"] = started
    fields["actual_cost_usd"] = final_cost(prediction, rate_of(catalogue, job.hardware))
    if output is not None:
        fields["output"] = output
    fields["next_poll_at"] = None
    if target is JobStatus.SUCCEEDED:
        # A run that succeeded has no error. The one a running job can carry is the cost limit's
        # mark (its cancel reached Replicate after the run finished); cleared whether or not this
        # session's copy of the row has seen it yet.
        fields |= {"error": None, "error_code": None, "error_hint": None}
    if target is JobStatus.FAILED:
        error = mask(str(prediction.get("error") or "")) or f"The run ended {prediction.get('status')}."
        logs = prediction.get("logs") if isinstance(prediction.get("logs"), str) else ""
        code, hint = classify_failure(error, (logs or "")[-LOG_TAIL_FOR_DIAGNOSIS:])
        if prediction.get("status") == "aborted":
            code, hint = "prediction_aborted", "The run's deadline passed before it started; submit again."
        fields |= {"error": error[:4000], "error_code": code, "error_hint": hint}
    return fields


def final_cost(prediction: dict[str, Any], usd_per_second: Decimal) -> Decimal:
    """`metrics.predict_time` (seconds of running, Replicate's billed time) at the job's own rate;
    missing metrics (aborted, canceled while queued) are zero billable seconds."""
    metrics = prediction.get("metrics") or {}
    try:
        seconds = Decimal(str(metrics.get("predict_time") or 0))
    except ArithmeticError:
        seconds = Decimal(0)
    if not seconds.is_finite() or seconds < 0:
        seconds = Decimal(0)
    return usd_per_second * seconds


def _message(target: JobStatus, raw: str | None, source: str) -> str:
    names = {
        "poll": "polling",
        "webhook": "a webhook",
        "list": "the predictions list",
        "create": "the create",
    }
    return f"Replicate reported {raw or target.value} (seen through {names.get(source, source)})."
