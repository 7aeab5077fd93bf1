"""Trained LoRAs and training checkpoints (issue 17).

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
        "lora",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("training_job_id", sa.String(64), nullable=False, unique=True),
        sa.Column("dataset_asset_ids", sa.Text(), nullable=False),
        sa.Column("dataset_sha256", sa.String(64), nullable=False),
        sa.Column("parameters", sa.LargeBinary(), nullable=False),
        sa.Column("final_loss", sa.Float(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_lora_owner_create", "lora", ["owner_id", "create_us"])
    op.create_table(
        "training_checkpoint",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("loss", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("training_checkpoint")
    op.drop_index("ix_lora_owner_create", "lora")
    op.drop_table("lora")
