"""A refresh token superseded by a retry within the grace (a client that lost the response):
presenting it later is reuse.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("auth_refresh_token", sa.Column("supersede_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_refresh_token") as batch:
        batch.drop_column("supersede_time")
