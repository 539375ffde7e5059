"""The job flow: the worker's schedule and durable submit steps on jobs, full logs, metrics, and the
cross-server upload lock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("next_poll_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("last_webhook_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("create_sent_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("create_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cancel_requested_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("cleaned_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("delivery", sa.String(16), nullable=False, server_default="none"))
        batch.add_column(sa.Column("error_hint", sa.Text(), nullable=True))
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("notice", sa.JSON(), nullable=True))
    op.create_index("ix_jobs_next_poll_at", "jobs", ["next_poll_at"])

    op.create_table(
        "job_logs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_logs_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_job_logs"),
        sa.UniqueConstraint("job_id", "offset", name="uq_job_logs_job_id_offset"),
    )
    op.create_table(
        "job_metrics",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_metrics_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "step", name="pk_job_metrics"),
    )
    op.create_table(
        "upload_locks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_upload_locks"),
    )


def downgrade() -> None:
    op.drop_table("upload_locks")
    op.drop_table("job_metrics")
    op.drop_table("job_logs")
    op.drop_index("ix_jobs_next_poll_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in (
            "notice", "warnings", "error_hint", "delivery", "cleaned_at", "cancel_requested_at",
            "create_attempts", "create_sent_at", "last_webhook_at", "next_poll_at",
        ):  # fmt: skip
            batch.drop_column(column)
