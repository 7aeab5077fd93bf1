"""Asset metadata owned by the storage service (SQLModel; the schema itself is managed by Alembic).

Life of a row: PENDING (reserved before any byte reaches S3) -> READY (committed only after the object
is complete and verified) -> DELETING (tombstone written before the object is removed) -> gone.
So a READY row always has its object, and every object in S3 has a row until the janitor removes it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["AssetRow", "Origin", "QuotaOwner", "State", "as_utc", "new_id", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class State(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    DELETING = "deleting"


class Origin(enum.StrEnum):
    PRESIGNED = "presigned"  # CreateUpload: the client PUTs to S3 itself
    STREAM = "stream"  # UploadAsset / StoreAsset: bytes flow through the service


def _time(nullable: bool = False, index: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


class AssetRow(SQLModel, table=True):
    __tablename__ = "storage_asset"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "request_id", name="uq_storage_asset_owner_request"),
        sa.Index("ix_storage_asset_owner_state_time", "owner_id", "state", "create_time", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    owner_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    object_key: str = Field(default="", max_length=400)
    kind: int = Field(default=0)
    content_type: str = Field(max_length=100)
    # Declared values while PENDING, verified values once READY.
    size_bytes: int = Field(default=0)
    sha256: str = Field(default="", max_length=64)
    state: str = Field(default=State.PENDING, max_length=16)
    origin: str = Field(default=Origin.STREAM, max_length=16)
    media_json: str = Field(default="")
    has_thumbnail: bool = Field(default=False)
    labels_json: str = Field(default="{}")
    # NULL when the client gave none (NULLs never collide in the unique constraint).
    request_id: str | None = Field(default=None, max_length=200)
    multipart_upload_id: str | None = Field(default=None, max_length=400)
    part_count: int = Field(default=0)
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    update_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    # PENDING rows only: after this the upload is abandoned and the janitor removes it.
    expire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True, index=True))


class QuotaOwner(SQLModel, table=True):
    """One row per owner, locked (``SELECT ... FOR UPDATE``) by every transaction that checks the
    owner's quota and then reserves or commits bytes: so the check and the write are one step across
    all replicas on one database. Usage itself is always summed from the asset rows (no counter that
    could drift from them)."""

    __tablename__ = "storage_quota_owner"

    owner_id: str = Field(primary_key=True, max_length=64)
