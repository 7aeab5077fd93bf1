"""Initial account schema: usage records, webhook endpoints, the delivery outbox and its attempts.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "account_usage_record",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("video_seconds", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        _time("end_time"),
        _time("record_time"),
    )
    op.create_index("ix_account_usage_user_end", "account_usage_record", ["user_id", "end_time", "job_id"])
    op.create_table(
        "account_webhook_endpoint",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(200), nullable=False),
        sa.Column("secret_box", sa.String(400), nullable=False),
        sa.Column("previous_secret_box", sa.String(400), nullable=False),
        _time("previous_secret_expire_time", nullable=True),
        _time("create_time"),
    )
    op.create_index(
        "ix_account_webhook_endpoint_user", "account_webhook_endpoint", ["user_id", "create_time", "id"]
    )
    op.create_table(
        "account_webhook_delivery",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(120), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=False),
        _time("create_time"),
        _time("window_start_time"),
        _time("next_attempt_time", nullable=True),
        sa.Column("lease_owner", sa.String(120), nullable=False),
        _time("lease_expire_time", nullable=True),
        sa.UniqueConstraint("endpoint_id", "event_key", name="uq_account_webhook_delivery_event"),
    )
    op.create_index("ix_account_webhook_delivery_due", "account_webhook_delivery", ["state", "next_attempt_time"])
    op.create_index(
        "ix_account_webhook_delivery_endpoint", "account_webhook_delivery", ["endpoint_id", "create_time", "id"]
    )
    op.create_table(
        "account_webhook_attempt",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _time("time"),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(300), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_account_webhook_attempt_delivery", "account_webhook_attempt", ["delivery_id", "attempt"])


def downgrade() -> None:
    for table in (
        "account_webhook_attempt", "account_webhook_delivery", "account_webhook_endpoint", "account_usage_record"
    ):
        op.drop_table(table)
