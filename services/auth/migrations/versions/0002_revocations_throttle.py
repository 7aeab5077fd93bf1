"""The revocation feed and database-backed login throttling.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "auth_revocation",
        # SQLite only autoincrements an INTEGER PRIMARY KEY.
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        _time("revoke_time"),
        _time("expire_time"),
    )
    op.create_index("ix_auth_revocation_expire_time", "auth_revocation", ["expire_time"])
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        _time("last_failure_time"),
        _time("blocked_until", nullable=True),
    )
    op.create_index("ix_auth_throttle_last_failure_time", "auth_throttle", ["last_failure_time"])


def downgrade() -> None:
    op.drop_index("ix_auth_throttle_last_failure_time", "auth_throttle")
    op.drop_table("auth_throttle")
    op.drop_index("ix_auth_revocation_expire_time", "auth_revocation")
    op.drop_table("auth_revocation")
