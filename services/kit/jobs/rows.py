"""Job rows and events as plain values: what ``store`` computes between its statements (no I/O here)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from services.kit.jobs.states import RUNNING
from viarte.type.v1 import job_pb2

__all__ = ["Row", "close_stage", "event", "where_stopped", "without_preview"]


def event(seq: int, now_us: int, state: int, progress: job_pb2.Progress,
          error: job_pb2.JobError | None = None) -> job_pb2.JobEvent:
    ev = job_pb2.JobEvent(sequence=seq, state=state, progress=progress, error=error)  # type: ignore[arg-type]
    ev.time.FromMicroseconds(now_us)
    return ev


def without_preview(progress: job_pb2.Progress) -> bytes:
    if not progress.preview_jpeg:
        return bytes(progress.SerializeToString())
    slim = job_pb2.Progress()
    slim.CopyFrom(progress)
    slim.ClearField("preview_jpeg")
    return bytes(slim.SerializeToString())


def where_stopped(last: job_pb2.Progress, final: job_pb2.Progress) -> job_pb2.Progress:
    out = job_pb2.Progress(step=last.step, total_steps=last.total_steps, frame=last.frame,
                           total_frames=last.total_frames, fraction=last.fraction)
    out.MergeFrom(final)
    return out


def stage_of(row: Row) -> int:
    """The stage of the row's stored progress (0: none)."""
    return job_pb2.Progress.FromString(row.progress).stage if row.progress else 0


def close_stage(row: Row, now_us: int, current: int, next_stage: int | None) -> None:
    """Adds the time spent in ``current``, the row's stage so far, when the stage changes to
    ``next_stage`` (None: the job ends). The caller says which stage is current: a batch of events
    moves through several stages before the row's progress is written once, at its end."""
    if next_stage is not None and next_stage == current:
        return
    if current and row.stage_since_us is not None and row.state == RUNNING:
        durations = json.loads(row.stage_durations or "{}")
        name = job_pb2.Stage.Name(current).removeprefix("STAGE_").lower()
        durations[name] = durations.get(name, 0.0) + max(0, now_us - row.stage_since_us) / 1e6
        row.stage_durations = json.dumps(durations)
    row.stage_since_us = max(now_us, row.stage_since_us or 0)


class Row(SimpleNamespace):
    """A job row as the claiming UPDATE returned it (every column an attribute), changed in
    Python; ``JobStore._save`` writes back the columns that changed. Core, not the ORM: an ORM
    load of a job costs ~2.5x the CPU of this (issue 14's profile), on every job operation."""

    loaded: dict[str, Any]

    @classmethod
    def of(cls, row: sa.Row[Any]) -> Row:
        values = dict(row._mapping)
        out = cls(**values)
        out.loaded = values
        return out

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "loaded" and self.loaded.get(k) != v}
