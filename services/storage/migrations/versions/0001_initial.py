"""Initial storage schema: asset metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_asset",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("object_key", sa.String(400), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("media_json", sa.Text(), nullable=False),
        sa.Column("has_thumbnail", sa.Boolean(), nullable=False),
        sa.Column("labels_json", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("multipart_upload_id", sa.String(400), nullable=True),
        sa.Column("part_count", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("owner_id", "request_id", name="uq_storage_asset_owner_request"),
    )
    op.create_index(
        "ix_storage_asset_owner_state_time", "storage_asset", ["owner_id", "state", "create_time", "id"]
    )
    op.create_index("ix_storage_asset_expire_time", "storage_asset", ["expire_time"])


def downgrade() -> None:
    op.drop_table("storage_asset")
