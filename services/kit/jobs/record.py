"""Immutable snapshots of stored jobs, and how they become protos."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from services.kit.jobs.states import TERMINAL
from services.kit.jobs.tables import JobRow
from viarte.type.v1 import job_pb2

__all__ = ["JobRecord", "build_job_message"]

M = TypeVar("M", bound=Message)


def _ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    if us is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


@dataclass(frozen=True)
class JobRecord:
    id: str
    owner: str
    kind: str
    request_id: str
    parameters: bytes
    state: int
    priority: int
    attempts: int
    cancel_requested: bool
    create_us: int
    start_us: int | None
    end_us: int | None
    result: bytes | None
    error: job_pb2.JobError | None
    progress: job_pb2.Progress
    last_sequence: int
    stage_durations: dict[str, float] = field(default_factory=dict)
    # The fencing epoch of the job's current (or last) lease; a running job's writes carry it.
    lease_epoch: int = 0
    # Where the current (or last) attempt runs (viarte.type.v1.Placement); None before a start.
    placement: job_pb2.Placement | None = None
    # Metering (issue 16): the creating API key, the estimate, the charge (None until account
    # recorded the outcome) and whether that record is still pending.
    api_key_id: str = ""
    estimated_credits: int = 0
    credits: int | None = None
    meter_pending: bool = False

    @classmethod
    def from_row(cls, row: JobRow | Any) -> JobRecord:
        """From anything with the job table's columns as attributes (an ORM row, a Core row)."""
        return cls(
            id=row.id,
            owner=row.owner,
            kind=row.kind,
            request_id=row.request_id or "",
            parameters=bytes(row.parameters),
            state=row.state,
            priority=row.priority,
            attempts=row.attempts,
            cancel_requested=row.cancel_requested,
            create_us=row.create_us,
            start_us=row.start_us,
            end_us=row.end_us,
            result=bytes(row.result) if row.result is not None else None,
            error=job_pb2.JobError.FromString(row.error) if row.error else None,
            progress=job_pb2.Progress.FromString(row.progress) if row.progress else job_pb2.Progress(),
            last_sequence=row.last_sequence,
            stage_durations=json.loads(row.stage_durations or "{}"),
            lease_epoch=row.lease_epoch,
            placement=job_pb2.Placement.FromString(row.placement) if row.placement else None,
            api_key_id=row.api_key_id or "",
            estimated_credits=row.estimated_credits or 0,
            credits=row.credits,
            meter_pending=row.meter_due_us is not None,
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def status(self, *, queue_position: int = 0) -> job_pb2.JobStatus:
        progress = job_pb2.Progress()
        progress.CopyFrom(self.progress)
        if queue_position:
            progress.queue_position = queue_position
        durations: dict[str, duration_pb2.Duration] = {}
        for stage, seconds in self.stage_durations.items():
            d = duration_pb2.Duration()
            d.FromNanoseconds(int(seconds * 1e9))
            durations[stage] = d
        return job_pb2.JobStatus(
            state=self.state,  # type: ignore[arg-type]
            progress=progress,
            create_time=_ts(self.create_us),
            start_time=_ts(self.start_us),
            end_time=_ts(self.end_us),
            error=self.error,
            attempts=self.attempts,
            last_sequence=self.last_sequence,
            priority=self.priority,
            stage_durations=durations,
            placement=self.placement,
            cost=job_pb2.JobCost(estimated_credits=self.estimated_credits, credits=self.credits or 0,
                                 final=self.credits is not None),
        )


def build_job_message(
    message_cls: Callable[..., M],
    record: JobRecord,
    *,
    parameters: Message,
    result: Message | None,
    queue_position: int = 0,
    **extra: Any,
) -> M:
    """Builds a job resource (GenerationJob, RenderJob, ...) that follows the common layout:
    id, owner_id, request_id, status, parameters, result."""
    return message_cls(
        id=record.id,
        owner_id=record.owner,
        request_id=record.request_id,
        status=record.status(queue_position=queue_position),
        parameters=parameters,
        result=result,
        **extra,
    )
