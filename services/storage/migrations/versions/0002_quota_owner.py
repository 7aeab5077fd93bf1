"""Quota owners: the per-owner row that serialises quota check-and-reserve across replicas.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("storage_quota_owner", sa.Column("owner_id", sa.String(64), primary_key=True))


def downgrade() -> None:
    op.drop_table("storage_quota_owner")
