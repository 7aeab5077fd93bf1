"""The prune of closed admission rows (``limits.prune_closed``) reads them by (open, create_time):
an index, so it never scans the table every few seconds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_account_admission_open_time", "account_admission", ["open", "create_time"])


def downgrade() -> None:
    op.drop_index("ix_account_admission_open_time", "account_admission")
