"""The job tables, created in the owning service's database by its own Alembic migration.

A service's migrations call :func:`create_job_tables` then :func:`add_job_leases` (and the drops on downgrade);
its ``env.py`` imports this module so the tables are on ``SQLModel.metadata``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "JobEventRow",
    "JobRow",
    "add_job_leases",
    "add_job_placement",
    "create_job_tables",
    "drop_job_leases",
    "drop_job_placement",
    "drop_job_tables",
]


class JobRow(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        sa.UniqueConstraint("owner", "kind", "request_id", name="uq_job_owner_kind_request"),
        sa.Index("ix_job_owner_kind_create", "owner", "kind", "create_us"),
        sa.Index("ix_job_state", "state"),
        sa.Index("ix_job_queue", "state", "priority", "create_us"),
    )

    id: str = Field(primary_key=True, max_length=36)
    owner: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    # NULL when the client sent none (NULLs never collide in the unique constraint).
    request_id: str | None = Field(default=None, max_length=128)
    parameters: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    state: int
    priority: int = 0
    attempts: int = 0
    cancel_requested: bool = False
    # Times are microseconds since the epoch: exact, sortable and the same on every backend.
    create_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    update_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    start_us: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    end_us: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    stage_since_us: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    result: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    # viarte.type.v1.JobError / Progress, serialised.
    error: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    progress: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    last_sequence: int = 0
    # {"stage name": seconds}, JSON.
    stage_durations: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, server_default="{}"))
    # The replica running the job (RUNNING only) and until when (database clock, µs) unless renewed.
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_us: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    # Fencing token: +1 per claim and per take-over; a running job's writes name the epoch they hold.
    lease_epoch: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    # viarte.type.v1.Placement of the current (or last) attempt, serialised; set by the executor
    # once it has chosen a device (issue 15), NULL before the first start.
    placement: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    # Metering (issue 16). The API key that created the job ("" for a signed-in user), the credits
    # estimated at create, the credits account charged (NULL until it recorded the outcome), and
    # "outcome not yet recorded": set in the transaction that ends the job, the time (µs) its next
    # RecordJobOutcome try is due; the meter loop of any replica claims due rows by pushing it
    # forward in one conditional UPDATE, and clears it once account accepted the outcome.
    api_key_id: str = Field(default="", sa_column=sa.Column(sa.String(64), nullable=False, server_default=""))
    estimated_credits: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    credits: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    meter_due_us: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))


class JobEventRow(SQLModel, table=True):
    __tablename__ = "job_event"

    job_id: str = Field(
        sa_column=sa.Column(sa.String(36), sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    )
    seq: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    # viarte.type.v1.JobEvent, serialised.
    payload: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    time_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


def create_job_tables(op: Any) -> None:
    """Call from a service migration's ``upgrade()`` with ``alembic.op``."""
    op.create_table(
        "job",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("parameters", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("create_us", sa.BigInteger, nullable=False),
        sa.Column("update_us", sa.BigInteger, nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=True),
        sa.Column("end_us", sa.BigInteger, nullable=True),
        sa.Column("stage_since_us", sa.BigInteger, nullable=True),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.LargeBinary, nullable=True),
        sa.Column("progress", sa.LargeBinary, nullable=True),
        sa.Column("last_sequence", sa.Integer, nullable=False),
        sa.Column("stage_durations", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("owner", "kind", "request_id", name="uq_job_owner_kind_request"),
    )
    op.create_index("ix_job_owner_kind_create", "job", ["owner", "kind", "create_us"])
    op.create_index("ix_job_state", "job", ["state"])
    op.create_table(
        "job_event",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
    )


def add_job_leases(op: Any) -> None:
    """Call from the migration after ``create_job_tables`` (leases for N replicas, issue 14):
    the lease columns and the index the claim query walks (QUEUED by priority, then age)."""
    op.add_column("job", sa.Column("lease_owner", sa.String(128), nullable=True))
    op.add_column("job", sa.Column("lease_expires_us", sa.BigInteger, nullable=True))
    op.add_column("job", sa.Column("lease_epoch", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_job_queue", "job", ["state", "priority", "create_us"])


def drop_job_leases(op: Any) -> None:
    op.drop_index("ix_job_queue", table_name="job")
    with op.batch_alter_table("job") as batch:  # SQLite rebuilds the table; PostgreSQL drops columns
        batch.drop_column("lease_epoch")
        batch.drop_column("lease_expires_us")
        batch.drop_column("lease_owner")


def add_job_placement(op: Any) -> None:
    """Call from the migration after ``add_job_leases`` (issue 15): where an attempt runs."""
    op.add_column("job", sa.Column("placement", sa.LargeBinary, nullable=True))


def drop_job_placement(op: Any) -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_column("placement")


def add_job_metering(op: Any) -> None:
    """Call from the migration after ``add_job_placement`` (issue 16): cost and the metering outbox."""
    op.add_column("job", sa.Column("api_key_id", sa.String(64), nullable=False, server_default=""))
    op.add_column("job", sa.Column("estimated_credits", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("job", sa.Column("credits", sa.BigInteger, nullable=True))
    op.add_column("job", sa.Column("meter_due_us", sa.BigInteger, nullable=True))
    # Only rows whose outcome is pending are indexed in practice (NULL elsewhere): the loop's scan.
    op.create_index("ix_job_meter_due", "job", ["meter_due_us"])


def drop_job_metering(op: Any) -> None:
    op.drop_index("ix_job_meter_due", table_name="job")
    with op.batch_alter_table("job") as batch:
        for column in ("meter_due_us", "credits", "estimated_credits", "api_key_id"):
            batch.drop_column(column)


def drop_job_tables(op: Any) -> None:
    op.drop_table("job_event")
    op.drop_index("ix_job_state", table_name="job")
    op.drop_index("ix_job_owner_kind_create", table_name="job")
    op.drop_table("job")
