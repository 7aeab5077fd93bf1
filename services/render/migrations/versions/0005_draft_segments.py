"""Playback segment cache (issue 19): draft segments and loudness measurements by content hash.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "render_draft_segment",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("used_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_render_draft_segment_used", "render_draft_segment", ["used_us"])


def downgrade() -> None:
    op.drop_index("ix_render_draft_segment_used", table_name="render_draft_segment")
    op.drop_table("render_draft_segment")
