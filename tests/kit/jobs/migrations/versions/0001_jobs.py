"""Job tables only.

Revision ID: 0001
Revises:
"""

from alembic import op

from services.kit.jobs.tables import create_job_tables, drop_job_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_job_tables(op)


def downgrade() -> None:
    drop_job_tables(op)
