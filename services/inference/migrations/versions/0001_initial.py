"""Inference schema: the shared job tables (generation and face swap jobs).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

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
