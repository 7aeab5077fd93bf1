"""Per-user rate buckets (the assistant's limit), shared by every inference replica.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inference_rate_bucket",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
    )
    op.create_index("ix_inference_rate_bucket_updated", "inference_rate_bucket", ["updated"])


def downgrade() -> None:
    op.drop_index("ix_inference_rate_bucket_updated", "inference_rate_bucket")
    op.drop_table("inference_rate_bucket")
