"""Job placement: where an attempt runs (executor, node, device; issue 15).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

from services.kit.jobs.tables import add_job_placement, drop_job_placement

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_job_placement(op)


def downgrade() -> None:
    drop_job_placement(op)
