"""Initial render schema: projects, and the shared job tables (render and upscale jobs).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.kit.jobs.tables import create_job_tables, drop_job_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "render_project",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("timeline", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("owner_id", "request_id", name="uq_render_project_owner_request"),
    )
    op.create_index("ix_render_project_owner_update", "render_project", ["owner_id", "update_us"])
    create_job_tables(op)


def downgrade() -> None:
    drop_job_tables(op)
    op.drop_index("ix_render_project_owner_update", table_name="render_project")
    op.drop_table("render_project")
