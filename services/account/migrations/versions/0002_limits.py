"""Budgets and request limits (issue 16): job admissions and rate buckets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
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
        "account_admission",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_account_admission_user_open", "account_admission", ["user_id", "open"])
    op.create_index("ix_account_admission_key_open", "account_admission", ["api_key_id", "open"])
    op.create_table(
        "account_rate_bucket",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
    )
    # The monthly budget of one API key sums its records of the month.
    op.create_index("ix_account_usage_key_end", "account_usage_record", ["api_key_id", "end_time"])


def downgrade() -> None:
    op.drop_index("ix_account_usage_key_end", "account_usage_record")
    op.drop_table("account_rate_bucket")
    op.drop_index("ix_account_admission_key_open", "account_admission")
    op.drop_index("ix_account_admission_user_open", "account_admission")
    op.drop_table("account_admission")
