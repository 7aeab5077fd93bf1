"""Tables owned by the account service (SQLModel; the schema itself is managed by Alembic).

- ``account_usage_record``: one per finished job (``job_id`` unique: RecordJobOutcome is idempotent).
- ``account_webhook_endpoint``: a user's receivers; secrets stored encrypted (``secrets.SecretBox``),
  because signing needs the secret itself (API keys, which are only compared, are stored hashed).
- ``account_webhook_delivery``: the outbox, one row per (event, endpoint), written in the same
  transaction as the usage record; claimed by dispatchers with a lease.
- ``account_webhook_attempt``: every HTTP attempt of a delivery.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "AdmissionRow", "DeliveryState", "RateBucketRow", "UsageRecordRow", "WebhookAttemptRow", "WebhookDeliveryRow", "WebhookEndpointRow",
    "as_utc", "new_id", "utcnow",
]  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def _time(nullable: bool = False, index: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


class UsageRecordRow(SQLModel, table=True):
    __tablename__ = "account_usage_record"
    __table_args__ = (sa.Index("ix_account_usage_user_end", "user_id", "end_time", "job_id"),)

    job_id: str = Field(primary_key=True, max_length=64)
    kind: int = Field()
    model: str = Field(default="", max_length=200)
    user_id: str = Field(max_length=64)
    api_key_id: str = Field(default="", max_length=64)
    state: int = Field()
    credits: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    width: int = Field(default=0)
    height: int = Field(default=0)
    frames: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    steps: int = Field(default=0)
    video_seconds: float = Field(default=0.0)
    gpu_seconds: float = Field(default=0.0)
    end_time: datetime = Field(sa_column=_time())
    record_time: datetime = Field(default_factory=utcnow, sa_column=_time())


class WebhookEndpointRow(SQLModel, table=True):
    __tablename__ = "account_webhook_endpoint"
    __table_args__ = (sa.Index("ix_account_webhook_endpoint_user", "user_id", "create_time", "id"),)

    id: str = Field(default_factory=lambda: new_id("ep_"), primary_key=True, max_length=64)
    user_id: str = Field(max_length=64)
    url: str = Field(max_length=2048)
    # Comma-separated; "" = every event type.
    event_types: str = Field(default="", max_length=200)
    disabled: bool = Field(default=False)
    disabled_reason: str = Field(default="", max_length=200)
    secret_box: str = Field(max_length=400)
    previous_secret_box: str = Field(default="", max_length=400)
    previous_secret_expire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())


class WebhookDeliveryRow(SQLModel, table=True):
    __tablename__ = "account_webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "event_key", name="uq_account_webhook_delivery_event"),
        sa.Index("ix_account_webhook_delivery_due", "state", "next_attempt_time"),
        sa.Index("ix_account_webhook_delivery_endpoint", "endpoint_id", "create_time", "id"),
    )

    # The `webhook-id` header.
    id: str = Field(default_factory=lambda: new_id("msg_"), primary_key=True, max_length=64)
    endpoint_id: str = Field(max_length=64)
    user_id: str = Field(max_length=64)
    event_type: str = Field(max_length=40)
    job_id: str = Field(max_length=64)
    # "<event type>:<job id>": one delivery per event and endpoint, whatever retries the caller does.
    event_key: str = Field(max_length=120)
    payload: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    state: str = Field(default=DeliveryState.PENDING, max_length=16)
    attempt_count: int = Field(default=0)
    last_status_code: int = Field(default=0)
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    # The retry window runs from here (reset by RedeliverWebhook).
    window_start_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    next_attempt_time: datetime | None = Field(default_factory=utcnow, sa_column=_time(nullable=True))
    lease_owner: str = Field(default="", max_length=120)
    lease_expire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class WebhookAttemptRow(SQLModel, table=True):
    __tablename__ = "account_webhook_attempt"
    __table_args__ = (sa.Index("ix_account_webhook_attempt_delivery", "delivery_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=64)
    attempt: int = Field()
    time: datetime = Field(default_factory=utcnow, sa_column=_time())
    status_code: int = Field(default=0)
    error: str = Field(default="", max_length=300)
    duration_ms: int = Field(default=0)


class AdmissionRow(SQLModel, table=True):
    """A job admitted under its caller's limits (issue 16, ``limits``): open until RecordJobOutcome
    of the job closes it (its charge then counts instead of ``credits``, the estimate) or the job
    service withdraws it (ReleaseJob: the create failed). Or a lease (``leases``): a block of
    ``slots`` admissions and ``credits`` reserved by the job service ``holder`` until settled."""

    __tablename__ = "account_admission"
    __table_args__ = (
        sa.Index("ix_account_admission_user_open", "user_id", "open"),
        sa.Index("ix_account_admission_key_open", "api_key_id", "open"),
        sa.Index("ix_account_admission_holder_expire", "holder", "expire_time"),
        sa.Index("ix_account_admission_open_time", "open", "create_time"),
    )

    job_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=64)
    api_key_id: str = Field(default="", max_length=64)
    credits: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    open: bool = Field(default=True)
    create_time: datetime = Field(default_factory=utcnow, sa_column=_time())
    slots: int = Field(default=1, sa_column=sa.Column(sa.Integer(), nullable=False, server_default="1"))
    holder: str = Field(default="", sa_column=sa.Column(sa.String(120), nullable=False, server_default=""))
    expire_time: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class RateBucketRow(SQLModel, table=True):
    """A token bucket of one (method class, subject): ``tokens`` as of ``updated`` (epoch seconds)."""

    __tablename__ = "account_rate_bucket"

    key: str = Field(primary_key=True, max_length=200)
    tokens: float = Field()
    updated: float = Field()
