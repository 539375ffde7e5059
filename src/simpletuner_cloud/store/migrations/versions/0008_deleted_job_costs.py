"""What deleted jobs cost, kept for the spend: deleting a finished job removed its cost from the
period's spend, so deleting history gave budget back to the cost limit.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
MONEY = sa.Numeric(12, 6)


def upgrade() -> None:
    op.create_table(
        "deleted_job_costs",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=False),
        sa.Column("hardware", sa.String(64), nullable=False),
        sa.Column("config_name", sa.String(255), nullable=False),
        sa.Column("cost_usd", MONEY, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_deleted_job_costs"),
    )
    op.create_index("ix_deleted_job_costs_completed_at", "deleted_job_costs", ["completed_at"])


def downgrade() -> None:
    op.drop_index("ix_deleted_job_costs_completed_at", table_name="deleted_job_costs")
    op.drop_table("deleted_job_costs")
