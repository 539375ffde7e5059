"""The webhook flight recorder: every arrival gets a row (accepted, duplicate, ignored, rejected, hint,
test), but only a verified first arrival claims its `webhook-id` (the unique column, now nullable), so
a forged request can never take a real delivery's id. Headers without secrets, the body of accepted
deliveries, who sent it, how long it took.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
NEW_COLUMNS = (
    "replayed_at", "latency_ms", "http_status", "body_size", "body", "headers", "peer_ip",
    "client_ip", "prediction_id", "error_code", "outcome", "presented_id",
)  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("webhook_id", existing_type=sa.String(255), nullable=True)
        batch.add_column(sa.Column("presented_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=False, server_default="accepted"))
        batch.add_column(sa.Column("error_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prediction_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("client_ip", sa.String(64), nullable=True))
        batch.add_column(sa.Column("peer_ip", sa.String(64), nullable=True))
        batch.add_column(sa.Column("headers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("body_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("http_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("replayed_at", TIMESTAMP, nullable=True))
    op.execute("UPDATE webhook_deliveries SET presented_id = webhook_id")
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    op.execute("DELETE FROM webhook_deliveries WHERE webhook_id IS NULL")
    with op.batch_alter_table("webhook_deliveries") as batch:
        for column in NEW_COLUMNS:
            batch.drop_column(column)
        batch.alter_column("webhook_id", existing_type=sa.String(255), nullable=False)
