"""Sample clips of training jobs (issue 17): one video asset per (job, step), so a job's result
lists the samples of every attempt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_sample",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("asset_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("training_sample")
