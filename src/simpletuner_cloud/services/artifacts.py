"""A job's deliveries and artifacts as the API shows them (`GET /api/cloud/jobs/{id}/artifacts`): each
destination's state with its reason and hint, every file with its size, sha256 and where it is, the
validation samples grouped by step for the gallery, and what is where in one message, with the time
left before Replicate's retention removes the prediction's data when a delivery is not verified.
Also opens one artifact for a download, from the disk, the user's bucket or the Hub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import anyio
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.artifacts import Kind
from simpletuner_cloud.domain.jobs import is_terminal
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services import hugging_face
from simpletuner_cloud.services.delivery_checks import RETENTION
from simpletuner_cloud.services.external_s3 import S3Target, read_object
from simpletuner_cloud.services.publishing import Publishing
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.tables import DeliveryArtifactRow, DeliveryRow, JobRow

Destination = Literal["local", "s3", "hub"]
PREFERENCE = ("local", "s3", "hub")  # a name held by several deliveries is served from the first
REPLICATE_WEB = "https://replicate.com/p/"


class ReasonView(BaseModel):
    code: str
    message: str
    hint: str


class DeliveryView(BaseModel):
    destination: Destination
    state: Literal["pending", "receiving", "delivered", "verified", "failed", "expired"]
    target: dict[str, Any] = Field(description="Repo id, or bucket and prefix, or the local folder.")
    reason: ReasonView | None
    attempts: int
    next_check_at: datetime | None = Field(
        description="When it is checked again (failed: while it can help)."
    )
    received_at: datetime | None
    delivered_at: datetime | None
    verified_at: datetime | None
    files: int
    bytes: int


class ArtifactView(BaseModel):
    name: str = Field(description="Path inside the job's folder, bucket prefix or Hub repo.")
    destination: Destination
    kind: Kind
    step: int | None
    size: int
    sha256: str | None
    etag: str | None
    location: str = Field(description="A local path, an S3 URL or a Hub URL.")
    download_url: str
    received_at: datetime
    verified_at: datetime | None


class SampleGroupView(BaseModel):
    step: int | None
    images: list[ArtifactView]


class CachesView(BaseModel):
    files: int
    bytes: int


class RetentionView(BaseModel):
    ends_at: datetime | None = Field(description="When Replicate removes the prediction's data.")
    seconds_left: int | None
    passed: bool


class ArtifactsView(BaseModel):
    job_id: str
    job_status: str
    message: str = Field(description="What is where, and what can still be done.")
    deliveries: list[DeliveryView]
    artifacts: list[ArtifactView]
    validation_samples: list[SampleGroupView]
    caches: CachesView
    retention: RetentionView


def download_url(job_id: str, row: DeliveryArtifactRow, destination: str) -> str:
    return f"/api/cloud/jobs/{job_id}/artifacts/{quote(row.name)}?destination={destination}"


def artifact_view(job_id: str, row: DeliveryArtifactRow, destination: str) -> ArtifactView:
    return ArtifactView(
        name=row.name,
        destination=destination,  # type: ignore[arg-type]
        kind=row.kind,  # type: ignore[arg-type]
        step=row.step,
        size=row.size,
        sha256=row.sha256,
        etag=row.etag,
        location=row.location,
        download_url=download_url(job_id, row, destination),
        received_at=row.received_at,
        verified_at=row.verified_at,
    )


def delivery_view(delivery: DeliveryRow, rows: list[DeliveryArtifactRow]) -> DeliveryView:
    reason = (
        ReasonView(code=delivery.reason_code, message=delivery.reason or "", hint=delivery.hint or "")
        if delivery.reason_code
        else None
    )
    return DeliveryView(
        destination=delivery.destination,  # type: ignore[arg-type]
        state=delivery.state,  # type: ignore[arg-type]
        target={k: v for k, v in delivery.target.items() if v is not None},
        reason=reason,
        attempts=delivery.attempts,
        next_check_at=delivery.next_check_at,
        received_at=delivery.received_at,
        delivered_at=delivery.delivered_at,
        verified_at=delivery.verified_at,
        files=len(rows),
        bytes=sum(r.size for r in rows),
    )


def retention_view(job: JobRow, now: datetime) -> RetentionView:
    if not is_terminal(job.status) or job.completed_at is None:
        return RetentionView(ends_at=None, seconds_left=None, passed=False)
    ends = job.completed_at + RETENTION
    left = int((ends - now).total_seconds())
    return RetentionView(ends_at=ends, seconds_left=max(left, 0), passed=left <= 0)


def _where(delivery: DeliveryRow) -> str:
    target = delivery.target
    if delivery.destination == "hub":
        return f"the Hub repo {target.get('repo_id')}"
    if delivery.destination == "s3":
        return f"s3://{target.get('bucket')}/{target.get('prefix')}/"
    return str(target.get("folder") or "cloud_outputs")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def what_is_where(
    job: JobRow, views: list[DeliveryView], deliveries: list[DeliveryRow], retention: RetentionView
) -> str:
    if not deliveries:
        if job.delivery == "none":
            return 'Delivery "none": the trained weights were not kept.'
        return "This job has no delivery record (it was submitted before deliveries were tracked)."
    sentences = []
    for delivery, view in zip(deliveries, views, strict=True):
        where = _where(delivery)
        if view.state == "verified":
            sentences.append(f"{where}: verified, {view.files} files ({view.bytes:,} bytes).")
        elif view.state in ("failed", "expired") and view.reason is not None:
            reason = " ".join(_sentence(part) for part in (view.reason.message, view.reason.hint) if part)
            # Said once: a hint that already promises the next check (hub_unreachable's) is enough.
            again = (
                " It is checked again later." if view.next_check_at and "checked again" not in reason else ""
            )
            sentences.append(f"{where}: {view.state}. {reason}{again}")
        elif view.state == "receiving":
            sentences.append(f"{where}: receiving, {view.files} files so far.")
        elif view.state == "delivered":
            sentences.append(f"{where}: delivered ({view.files} files), being verified.")
        else:
            sentences.append(f"{where}: waiting for the training to publish (after each validation run).")
    unverified = [v for v in views if v.state != "verified"]
    if is_terminal(job.status) and unverified and retention.ends_at is not None:
        page = f" ({REPLICATE_WEB}{job.prediction_id})" if job.prediction_id else ""
        if retention.passed:
            sentences.append(
                "Replicate's retention has passed: the prediction's inputs, output and logs are gone there; "
                "what is listed here (and the logs kept by this server) is what remains."
            )
        else:
            minutes = max(1, retention.seconds_left // 60) if retention.seconds_left else 1
            sentences.append(
                f"Replicate keeps the prediction's output and logs until {retention.ends_at:%H:%M} UTC "
                f"(in {minutes} min){page}; the logs are also kept by this server."
            )
    return " ".join(sentences)


async def job_artifacts(
    session: AsyncSession, job_id: str, *, include_caches: bool = False, now: datetime | None = None
) -> ArtifactsView:
    now = now or datetime.now(UTC)
    job = await repo.require_job(session, job_id)
    deliveries = await ledger.list_deliveries(session, job_id)
    rows = await ledger.list_artifacts(session, job_id=job_id)
    destination_of = {d.id: d.destination for d in deliveries}
    by_delivery: dict[str, list[DeliveryArtifactRow]] = {d.id: [] for d in deliveries}
    for row in rows:
        by_delivery.setdefault(row.delivery_id, []).append(row)
    views = [delivery_view(d, by_delivery[d.id]) for d in deliveries]
    shown = [r for r in rows if include_caches or r.kind != "cache"]
    artifacts = [artifact_view(job_id, r, destination_of[r.delivery_id]) for r in shown]
    groups: dict[int | None, list[ArtifactView]] = {}
    for artifact in artifacts:
        if artifact.kind == "validation_image":
            groups.setdefault(artifact.step, []).append(artifact)
    samples = [
        SampleGroupView(step=step, images=images)
        for step, images in sorted(groups.items(), key=lambda item: (item[0] is None, item[0] or 0))
    ]
    caches = [r for r in rows if r.kind == "cache"]
    retention = retention_view(job, now)
    return ArtifactsView(
        job_id=job_id,
        job_status=job.status,
        message=what_is_where(job, views, deliveries, retention),
        deliveries=views,
        artifacts=artifacts,
        validation_samples=samples,
        caches=CachesView(files=len(caches), bytes=sum(r.size for r in caches)),
        retention=retention,
    )


@dataclass(frozen=True)
class Download:
    filename: str
    size: int
    path: Path | None = None  # a local file
    chunks: Iterator[bytes] | None = None  # streamed from S3 or the Hub


def _inside_as_file(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder) and not path.is_symlink() and path.is_file()


def _not_found(job_id: str, name: str) -> CloudError:
    return CloudError(
        f"Job {job_id} has no artifact {name!r}.",
        code="artifact_not_found",
        hint=f"GET /api/cloud/jobs/{job_id}/artifacts lists its files.",
    )


async def open_artifact(
    session: AsyncSession,
    settings: Settings,
    publishing: Publishing,
    job_id: str,
    name: str,
    destination: str | None = None,
) -> Download:
    await repo.require_job(session, job_id)
    deliveries = {d.id: d for d in await ledger.list_deliveries(session, job_id)}
    candidates = [r for r in await ledger.list_artifacts(session, job_id=job_id) if r.name == name]
    candidates = [
        r for r in candidates if destination is None or deliveries[r.delivery_id].destination == destination
    ]
    candidates.sort(key=lambda r: PREFERENCE.index(deliveries[r.delivery_id].destination))
    if not candidates:
        raise _not_found(job_id, name)
    row = candidates[0]
    delivery = deliveries[row.delivery_id]
    filename = name.rsplit("/", 1)[-1]
    if delivery.destination == "local":
        path = Path(row.location)
        folder = settings.outputs_dir / job_id
        if not _inside_as_file(path, folder):
            raise CloudError(
                f"{name} is no longer in {folder}.",
                code="artifact_unavailable",
                hint="It was moved or deleted after it arrived; the delivery's check will say so.",
            )
        return Download(filename, row.size, path=path)
    if delivery.destination == "s3":
        target = delivery.target
        s3 = S3Target(
            bucket=str(target["bucket"]),
            region=str(target.get("region") or "us-east-1"),
            prefix=str(target["prefix"]),
            access_key=publishing.s3_access_key,
            secret_key=publishing.s3_secret_key,
            endpoint_url=target.get("endpoint_url"),
        )
        return Download(filename, row.size, chunks=read_object(s3, f"{s3.prefix}/{name}"))
    endpoint = str(delivery.target.get("endpoint") or publishing.hub_endpoint)
    repo_id = str(delivery.target["repo_id"])
    revision = str(delivery.target.get("revision") or "main")
    token = publishing.hf_token
    await anyio.to_thread.run_sync(_still_as_recorded, endpoint, token, repo_id, revision, row)
    chunks = hugging_face.stream_file(endpoint, token, repo_id, name, revision)
    return Download(filename, row.size, chunks=chunks)


def _still_as_recorded(
    endpoint: str, token: str | None, repo_id: str, revision: str, row: DeliveryArtifactRow
) -> None:
    """The Hub file is the one recorded for this job (same LFS sha256, same git blob): a repo's `main`
    moves on with every later push, and serving what it holds now would hand over another run's file.
    A delivery pinned to its commit reads that commit, which does not move."""
    try:
        files = {f.path: f for f in hugging_face.repo_files(endpoint, token, repo_id, revision)}
    except hugging_face.HubUnavailable as exc:
        raise CloudError(
            f"The Hub could not be read at {endpoint} ({exc}).",
            code="artifact_unavailable",
            hint="Try again later.",
        ) from exc
    found = files.get(row.name)
    history = f"{hugging_face.web_url(endpoint, repo_id)}/commits/main"
    if found is None:
        raise CloudError(
            f"{row.name} is no longer in {repo_id} ({revision}).",
            code="artifact_unavailable",
            hint=f"It was removed after this job's delivery was checked; the repo's history: {history}.",
        )
    changed = (row.sha256 is not None and found.sha256 != row.sha256) or (
        row.etag is not None and found.blob_id[:80] != row.etag
    )
    if changed:
        recorded = f"sha256 {row.sha256}" if row.sha256 else f"git blob {row.etag}"
        now = f"sha256 {found.sha256}" if row.sha256 else f"git blob {found.blob_id}"
        raise CloudError(
            f"{row.name} in {repo_id} is no longer the file job {row.job_id} delivered: a later push "
            f"replaced it on {revision} (recorded {recorded}, now {now}).",
            code="artifact_unavailable",
            hint=f"The repo's history keeps this job's version: {history}.",
        )
