"""Budgets and request limits (issue 16): the key's own on auth_api_key, a user's over all of
their keys on auth_user (0 = no limit).

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

_COLUMNS = ("limit_monthly_credits", "limit_creates_per_minute", "limit_reads_per_minute", "limit_concurrent_jobs")


def upgrade() -> None:
    for table in ("auth_api_key", "auth_user"):
        for column in _COLUMNS:
            op.add_column(table, sa.Column(column, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("auth_api_key", "auth_user"):
        with op.batch_alter_table(table) as batch:
            for column in _COLUMNS:
                batch.drop_column(column)
