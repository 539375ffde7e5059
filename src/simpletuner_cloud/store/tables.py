"""Table rows of the job store. Schema changes go through a new Alembic revision in `migrations/`.

Timestamps are timezone-aware UTC in Python whatever the backend; money is `Decimal` (Numeric)."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Lowercase Crockford base32: no i, l, o, u, so ids read aloud and copy well.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def mint_id(prefix: str) -> str:
    """`<prefix>_` + 20 base32 chars: 10 for the millisecond clock (ids sort by creation), 10 random."""
    value = (time.time_ns() // 1_000_000) << 50 | secrets.randbits(50)
    chars = [_ALPHABET[(value >> shift) & 31] for shift in range(95, -1, -5)]
    return f"{prefix}_{''.join(chars)}"


def is_minted_id(value: str, prefix: str) -> bool:
    """The shape `mint_id` gives: `<prefix>_` and 20 characters of its alphabet."""
    body = value.removeprefix(f"{prefix}_")
    return body != value and len(body) == 20 and all(c in _ALPHABET for c in body)


def new_job_id() -> str:
    return mint_id("job")


def new_upload_id() -> str:
    return mint_id("upl")


def new_client_ref() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend. SQLite has no time zones, so it stores naive UTC text
    (which still sorts and compares correctly); PostgreSQL stores `timestamptz`."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Money: exact decimal dollars with 6 places (per-second GPU prices are fractions of a cent).
Money = Numeric(12, 6)
# SQL NULL for Python None, so "no output yet" is not the JSON literal `null`.
Json = JSON(none_as_null=True)
# 64-bit keys on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        Decimal: Money,
        dict[str, Any]: Json,
        Any: Json,
    }


class UploadRow(Base):
    """A dataset archive uploaded to Replicate's `/v1/files`, reusable by sha256 until it expires."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_upload_id)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    replicate_file_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


class JobRow(Base):
    __tablename__ = "jobs"
    # Revision 0004: the list's filters come with its order (a page of one status or hardware is read
    # from the index, never sorted), and the worker's claim reads only jobs not cleaned up yet (every
    # due job is one), so neither grows with the finished history.
    __table_args__ = (
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_hardware_id", "hardware", "id"),
        Index(
            "ix_jobs_due",
            "next_poll_at",
            "id",
            sqlite_where=sql("cleaned_at IS NULL"),
            postgresql_where=sql("cleaned_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    prediction_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    client_ref: Mapped[str] = mapped_column(String(32), unique=True, default=new_client_ref)
    status: Mapped[str] = mapped_column(String(16))
    provider_status: Mapped[str | None] = mapped_column(String(32))
    config_name: Mapped[str] = mapped_column(String(255))
    hardware: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    estimated_cost_usd: Mapped[Decimal | None]
    actual_cost_usd: Mapped[Decimal | None]
    reserved_cost_usd: Mapped[Decimal | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    output: Mapped[Any | None]
    progress: Mapped[dict[str, Any] | None]
    logs_offset: Mapped[int] = mapped_column(Integer, default=0)
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lock_token: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    # Added by revision 0002: the worker's schedule and the submit flow's durable steps.
    next_poll_at: Mapped[datetime | None]
    last_webhook_at: Mapped[datetime | None]
    logs_polled_at: Mapped[datetime | None]  # revision 0007: the last full read of the log, any server
    create_sent_at: Mapped[datetime | None]  # set before a create is sent; with no id it is "maybe created"
    create_attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None]
    cleaned_at: Mapped[datetime | None]  # the after-the-end clean-up ran (dataset file deleted, secrets gone)
    delivery: Mapped[str] = mapped_column(String(16), default="none")
    error_hint: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[Any | None]
    notice: Mapped[dict[str, Any] | None]  # the doctor's word on a job stuck in queued


class DeletedJobCostRow(Base):
    """What a deleted job cost, kept for the spend (revision 0008): deleting a job's history must not
    give its money back to the cost limit. Only the columns the spend views sum and group by."""

    __tablename__ = "deleted_job_costs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(index=True)
    hardware: Mapped[str] = mapped_column(String(64))
    config_name: Mapped[str] = mapped_column(String(255))
    cost_usd: Mapped[Decimal]
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLogRow(Base):
    """The job's logs kept in full (Replicate removes them an hour after the end), as appended chunks:
    `offset` is where the chunk starts in the cumulative text, unique per job, so no chunk is stored twice."""

    __tablename__ = "job_logs"
    __table_args__ = (UniqueConstraint("job_id", "offset"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    offset: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)


class JobMetricRow(Base):
    """One training step's loss and learning rate, for the chart; the latest reading of a step wins."""

    __tablename__ = "job_metrics"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetUploadRow(Base):
    """A dataset upload started through `/api/cloud/data/uploads`, mirrored by the server running it
    so every server can answer for it (`snapshot` is the API's answer; `heartbeat_at` says the runner
    is alive)."""

    __tablename__ = "dataset_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    snapshot: Mapped[dict[str, Any]]
    holder: Mapped[str] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UploadLockRow(Base):
    """Who is uploading an archive with this sha256 right now, across every server on the database."""

    __tablename__ = "upload_locks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    locked_until: Mapped[datetime]


class JobEventRow(Base):
    """One entry of a job's timeline (status changes, log chunks, webhooks, deliveries, cost)."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]


class ProviderSettingsRow(Base):
    __tablename__ = "provider_settings"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDeliveryRow(Base):
    """Every webhook that arrived (the flight recorder). Only a verified first arrival claims its
    `webhook-id` (unique); duplicates, rejections and unsigned hints keep theirs in `presented_id`
    with `webhook_id` NULL, so a forged request can never take a real delivery's id.

    `job_id` is deliberately not a foreign key: deliveries for unknown jobs are recorded too."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(32))
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str | None] = mapped_column(Text)
    # Added by revision 0003: the flight recorder.
    presented_id: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16), default="accepted", server_default="accepted")
    error_code: Mapped[str | None] = mapped_column(String(64))  # why a rejected one was refused
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    peer_ip: Mapped[str | None] = mapped_column(String(64))
    headers: Mapped[dict[str, Any] | None]  # secrets removed
    body: Mapped[bytes | None] = mapped_column(LargeBinary)  # zlib; accepted deliveries only
    body_size: Mapped[int | None] = mapped_column(BigInteger)
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    replayed_at: Mapped[datetime | None]


def new_delivery_id() -> str:
    return mint_id("dlv")


class DeliveryRow(Base):
    """Where one job's trained model goes (hub, s3 or local) and how far it got, apart from the job's
    training status: pending, receiving, delivered, verified, failed (with a reason, retried while that
    can help) or expired. Added by revision 0005; the delivery task leases rows like the job runner."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", "destination"),
        Index("ix_deliveries_next_check_at", "next_check_at"),
        Index("ix_deliveries_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_delivery_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)  # repo id, bucket and prefix, or folder
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    hint: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None]  # NULL: nothing left to do
    lock_token: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]  # the first file arrived
    delivered_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]


class DeliveryArtifactRow(Base):
    """One file a delivery holds: its name inside the job's folder (local), prefix (S3) or repo (Hub),
    size, sha256 where known, and where it is."""

    __tablename__ = "delivery_artifacts"
    __table_args__ = (UniqueConstraint("delivery_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(24))
    step: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(80))
    location: Mapped[str] = mapped_column(Text)  # a local path, an S3 URL or a Hub URL
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None]
