"""Indexes that keep the jobs list and the worker's claim independent of how many finished jobs the
store holds: `(status, id)` and `(hardware, id)` give a filtered page in the list's order (no sort of
every match), and `ix_jobs_due` (`next_poll_at, id` over the jobs not cleaned up yet, a partial index)
is all the claim reads. They replace `ix_jobs_status` and `ix_jobs_next_poll_at`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CLEANED = sa.text("cleaned_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_hardware_id", "jobs", ["hardware", "id"])
    op.create_index(
        "ix_jobs_due", "jobs", ["next_poll_at", "id"], sqlite_where=NOT_CLEANED, postgresql_where=NOT_CLEANED
    )
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_next_poll_at", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_next_poll_at", "jobs", ["next_poll_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_index("ix_jobs_hardware_id", table_name="jobs")
    op.drop_index("ix_jobs_status_id", table_name="jobs")
