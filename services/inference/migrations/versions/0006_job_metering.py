"""Job metering (issue 16): the creating API key, estimated and charged credits, and the
"outcome not yet recorded with account" marker the meter loop retries from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

from services.kit.jobs.tables import add_job_metering, drop_job_metering

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_job_metering(op)


def downgrade() -> None:
    drop_job_metering(op)
