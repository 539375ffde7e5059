"""The common webhook, applied in bulk. Most deliveries Replicate sends for a running job say only that
its log grew: same status, same output, more text (the first may also bring the provider's status
word or the start time). The group commit hands those of one transaction
here together, and they are written in a handful of statements whatever their number (one claim of
every `webhook-id`, one read of every job, one compare-and-set per job, one insert each of the log
chunks with their events, the readings and the notifications) instead of ten or so each.

Only what `job_tracking.same_status_columns` allows is taken, and only a job's first delivery of the
batch (the others follow it in order through `apply_prediction`); every write is the one
`apply_prediction` would make, with the same helpers. The jobs are read under the transaction's write
lock (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's `FOR UPDATE`), so no other writer moves their logs in
between; should a compare-and-set miss all the same, `Contended` is raised: the group commit rolls
the bulk part back and sends each delivery through the one-by-one path, so nothing is lost or written
twice."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.security.redaction import masked_from
from simpletuner_cloud.services.job_tracking import read_progress, same_status_columns
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store import webhook_deliveries as deliveries
from simpletuner_cloud.store.notify import announce_all
from simpletuner_cloud.store.tables import JobRow

QUIET = "nothing newer than what the job already had"


@dataclass(frozen=True)
class Delivery:
    """A verified delivery as the receiver hands it to the group commit."""

    webhook_id: str  # the claimable key
    payload: dict[str, Any]
    job_ref: str | None
    fields: dict[str, Any]  # the flight recorder's columns (event, status, headers, who sent it...)
    kept: bytes | None  # the body as the recorder keeps it
    now: datetime
    started: float  # `time.perf_counter()` at arrival: the recorded latency

    @property
    def prediction_id(self) -> str:
        return str(self.payload.get("id") or "")


@dataclass(frozen=True)
class Taken:
    """One delivery applied in bulk: its flight-recorder row and the job it moved."""

    row_id: int
    job_id: str
    job_status: str


class Contended(Exception):
    """Another writer moved a job's log during the bulk write: redo the batch one by one."""


def _chosen(
    batch: list[tuple[int, Delivery]], jobs: dict[str, JobRow], catalogue: HardwareCatalogue, skip: str
) -> list[tuple[int, Delivery, JobRow, dict[str, Any]]]:
    ids = Counter(delivery.webhook_id for _, delivery in batch)
    seen: set[str] = set()
    chosen = []
    for index, delivery in batch:
        job = jobs.get(delivery.prediction_id)
        if job is None or job.id in seen:
            continue
        seen.add(job.id)  # a job's later deliveries follow its first one, one by one
        if ids[delivery.webhook_id] > 1 or delivery.payload.get(skip) is True:
            continue
        if delivery.job_ref is not None and delivery.job_ref != job.id:
            continue
        columns = same_status_columns(job, delivery.payload, catalogue, delivery.now)
        if columns is not None:
            chosen.append((index, delivery, job, columns))
    return chosen


async def apply_together(
    session: AsyncSession,
    batch: list[tuple[int, Delivery]],
    catalogue: HardwareCatalogue,
    *,
    skip_marked: str,
) -> dict[int, Taken]:
    """Apply the deliveries of `batch` (index, delivery) that can go in bulk; the answer names those
    taken by index. The others (and any delivery whose `webhook-id` was claimed already) are left to
    the caller. `skip_marked` is the body key that marks a delivery to leave alone (the self-test)."""
    jobs = await repo.jobs_by_prediction(session, [delivery.prediction_id for _, delivery in batch])
    chosen = _chosen(batch, jobs, catalogue, skip_marked)
    if not chosen:
        return {}
    reads = {}
    claims = []
    for index, delivery, job, _ in chosen:
        logs = delivery.payload.get("logs")
        if isinstance(logs, str) and len(logs) > job.logs_offset:
            reads[index] = read_progress(job.progress, logs)
        claims.append(
            {
                "webhook_id": delivery.webhook_id,
                "outcome": "accepted",
                **delivery.fields,
                "job_id": job.id,
                "body": delivery.kept,
                "latency_ms": round((time.perf_counter() - delivery.started) * 1000, 3),
                "reason": None if index in reads else QUIET,
            }
        )
    claimed = await deliveries.claim_deliveries(session, claims)
    taken: dict[int, Taken] = {}
    chunks: list[tuple[str, int, str]] = []
    moves: list[tuple[JobRow, int, dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    readings: dict[str, list[tuple[int, float | None, float | None]]] = {}
    for index, delivery, job, columns in chosen:
        row_id = claimed.get(delivery.webhook_id)
        if row_id is None:
            continue  # a redelivery: the one-by-one path records it as a duplicate
        read = reads.get(index)
        if read is None:  # no new text: when it was heard from, and the status columns if any
            await repo.set_fields(session, job.id, job=job, **columns, last_webhook_at=delivery.now)
        else:
            logs = str(delivery.payload["logs"])
            offset = job.logs_offset
            values = {"logs_offset": len(logs), "last_webhook_at": delivery.now, **read.columns, **columns}
            moves.append((job, offset, values))
            chunks.append((job.id, offset, masked_from(logs, offset)))
            if read.points:
                readings[job.id] = read.readings
            if read.milestone:
                events.append(
                    {
                        "job_id": job.id,
                        "at": delivery.now,
                        "kind": "progress",
                        "data": read.progress.as_dict(),
                    }
                )
        taken[index] = Taken(row_id, job.id, job.status)
    if not await repo.advance_logs_together(session, moves):
        raise Contended(", ".join(job.id for job, _, _ in moves))
    await repo.add_log_chunks(session, chunks, events)
    await repo.record_readings(session, readings)
    await announce_all(session, [item.job_id for item in taken.values()])
    return taken
