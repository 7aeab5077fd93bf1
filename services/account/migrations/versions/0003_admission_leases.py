"""Admission leases (issue 16): a job service replica reserves a block of a caller's admissions.

A lease is an ``account_admission`` row holding ``slots`` concurrency slots and ``credits`` of
budget until it is settled (``holder`` settles it, also after ``expire_time``); a job's own row
has one slot and no expiry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_admission") as batch:
        batch.add_column(sa.Column("slots", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("holder", sa.String(120), nullable=False, server_default=""))
        batch.add_column(sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_account_admission_holder_expire", "account_admission", ["holder", "expire_time"])


def downgrade() -> None:
    op.drop_index("ix_account_admission_holder_expire", "account_admission")
    with op.batch_alter_table("account_admission") as batch:
        batch.drop_column("expire_time")
        batch.drop_column("holder")
        batch.drop_column("slots")
