"""Job leases: N replicas share the job table (lease owner, expiry, fencing epoch; issue 14).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

from services.kit.jobs.tables import add_job_leases, drop_job_leases

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_job_leases(op)


def downgrade() -> None:
    drop_job_leases(op)
