"""Identity tables owned by the auth service (SQLModel; the schema itself is managed by Alembic)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "ApiKey",
    "AuthSession",
    "RefreshToken",
    "Revocation",
    "SigningKeyRecord",
    "ThrottleEntry",
    "User",
    "as_utc",
    "new_id",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def _time(nullable: bool = False, index: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


class User(SQLModel, table=True):
    __tablename__ = "auth_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    email: str = Field(max_length=320, sa_column_kwargs={"unique": True}, index=False)
    display_name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=100)
    role: str = Field(default="user", max_length=16)
    disabled: bool = Field(default=False)
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time(index=True))
    update_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    # Budget and request limits (issue 16, the user's over all keys; services/auth/limits.py), 0 = none.
    limit_monthly_credits: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_creates_per_minute: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_reads_per_minute: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_concurrent_jobs: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))


class AuthSession(SQLModel, table=True):
    """One login: the family of refresh tokens it rotates through, revoked as a whole."""

    __tablename__ = "auth_session"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="auth_user.id", index=True, max_length=36, ondelete="CASCADE")
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    expire_time: datetime = Field(sa_column=_time())
    revoke_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    revoke_reason: str | None = Field(default=None, max_length=40)
    client_address: str = Field(default="", max_length=100)


class RefreshToken(SQLModel, table=True):
    """A refresh token by its SHA-256. `rotate_time` set means it was spent: presenting it again is reuse,
    unless it is the family's last spent token, within the retry grace, and its successor was never
    presented (the client lost the response). `supersede_time` set means such a retry replaced it
    before anyone presented it: presenting it later is always reuse."""

    __tablename__ = "auth_refresh_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    session_id: str = Field(foreign_key="auth_session.id", index=True, max_length=36, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    expire_time: datetime = Field(sa_column=_time())
    rotate_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    supersede_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class ApiKey(SQLModel, table=True):
    """A partner API key; only the SHA-256 of its (256-bit random) secret is stored."""

    __tablename__ = "auth_api_key"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="auth_user.id", index=True, max_length=36, ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)
    secret_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    scopes: str = Field(default="", max_length=500)
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    expire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    last_used_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    revoke_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    # Budget and request limits (issue 16; services/auth/limits.py), 0 = none.
    limit_monthly_credits: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_creates_per_minute: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_reads_per_minute: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    limit_concurrent_jobs: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))


class SigningKeyRecord(SQLModel, table=True):
    """An Ed25519 token signing key. Exactly one is active (retire_time NULL); retired keys keep
    verifying until `not_after`, when every token they signed has expired."""

    __tablename__ = "auth_signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    algorithm: str = Field(default="EdDSA", max_length=16)
    private_key: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    public_key: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    retire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    not_after: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class Revocation(SQLModel, table=True):
    """One entry of the revocation feed (`AuthInternalService.WatchRevocations`). Stored in the same
    transaction as the revocation itself, so the feed survives restarts and a subscriber that
    reconnects replays what it missed; kept until `expire_time`, when nothing it names can be valid."""

    __tablename__ = "auth_revocation"

    sequence: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True))
    # "session", "user" or "api_key".
    kind: str = Field(max_length=16)
    target: str = Field(max_length=64)
    revoke_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    expire_time: datetime = Field(sa_column=_time(index=True))


class ThrottleEntry(SQLModel, table=True):
    """Failed attempts of one throttle key ("login:<email>|<address>", "address:<address>", ...):
    the next attempt is refused until `blocked_until`. In the database so every replica sees it."""

    __tablename__ = "auth_throttle"

    key: str = Field(primary_key=True, max_length=400)
    failures: int = Field(default=0)
    last_failure_time: datetime = Field(sa_column=_time(index=True))
    blocked_until: datetime | None = Field(default=None, sa_column=_time(nullable=True))
