"""Initial identity schema: users, sessions, refresh tokens, API keys, signing keys.

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


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "auth_user",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _time("create_time"),
        _time("update_time"),
    )
    op.create_index("ix_auth_user_create_time", "auth_user", ["create_time"])
    op.create_table(
        "auth_session",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False
        ),
        _time("create_time"),
        _time("expire_time"),
        _time("revoke_time", nullable=True),
        sa.Column("revoke_reason", sa.String(40), nullable=True),
        sa.Column("client_address", sa.String(100), nullable=False),
    )
    op.create_index("ix_auth_session_user_id", "auth_session", ["user_id"])
    op.create_table(
        "auth_refresh_token",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("auth_session.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _time("create_time"),
        _time("expire_time"),
        _time("rotate_time", nullable=True),
    )
    op.create_index("ix_auth_refresh_token_session_id", "auth_refresh_token", ["session_id"])
    op.create_table(
        "auth_api_key",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(500), nullable=False),
        _time("create_time"),
        _time("expire_time", nullable=True),
        _time("last_used_time", nullable=True),
        _time("revoke_time", nullable=True),
    )
    op.create_index("ix_auth_api_key_user_id", "auth_api_key", ["user_id"])
    op.create_table(
        "auth_signing_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        _time("create_time"),
        _time("retire_time", nullable=True),
        _time("not_after", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_signing_key")
    op.drop_index("ix_auth_api_key_user_id", "auth_api_key")
    op.drop_table("auth_api_key")
    op.drop_index("ix_auth_refresh_token_session_id", "auth_refresh_token")
    op.drop_table("auth_refresh_token")
    op.drop_index("ix_auth_session_user_id", "auth_session")
    op.drop_table("auth_session")
    op.drop_index("ix_auth_user_create_time", "auth_user")
    op.drop_table("auth_user")
