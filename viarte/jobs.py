"""Typed job states, stages and progress events shared by every job kind.

Generation, face swap, render and upscale jobs share one shape in the contracts (``JobStatus``,
``JobEvent``, ``Watch`` sending the job first and then events). The SDK turns both kinds of watch
message into one immutable :class:`JobProgress`, so callers draw one progress UI for every job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from viarte.type.v1 import job_pb2

__all__ = ["JobProgress", "JobState", "Placement", "Stage"]


class JobState(enum.IntEnum):
    UNSPECIFIED = job_pb2.JOB_STATE_UNSPECIFIED
    QUEUED = job_pb2.JOB_STATE_QUEUED
    RUNNING = job_pb2.JOB_STATE_RUNNING
    SUCCEEDED = job_pb2.JOB_STATE_SUCCEEDED
    FAILED = job_pb2.JOB_STATE_FAILED
    CANCELLED = job_pb2.JOB_STATE_CANCELLED

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @classmethod
    def parse(cls, value: str | int) -> JobState:
        if isinstance(value, int):
            return cls(value)
        return cls[value.upper().removeprefix("JOB_STATE_")]


class Stage(enum.IntEnum):
    UNSPECIFIED = job_pb2.STAGE_UNSPECIFIED
    QUEUED = job_pb2.STAGE_QUEUED
    FETCHING_INPUTS = job_pb2.STAGE_FETCHING_INPUTS
    MODEL_LOADING = job_pb2.STAGE_MODEL_LOADING
    DENOISING = job_pb2.STAGE_DENOISING
    DECODING = job_pb2.STAGE_DECODING
    FACE_SWAP = job_pb2.STAGE_FACE_SWAP
    UPSCALING = job_pb2.STAGE_UPSCALING
    RENDERING = job_pb2.STAGE_RENDERING
    ENCODING = job_pb2.STAGE_ENCODING
    UPLOADING = job_pb2.STAGE_UPLOADING
    GENERATING_TEXT = job_pb2.STAGE_GENERATING_TEXT
    TRAINING = job_pb2.STAGE_TRAINING

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").lower()


def _enum(cls: type[enum.IntEnum], value: int) -> Any:
    try:
        return cls(value)
    except ValueError:  # a newer server's value: keep going, show it as unspecified
        return cls(0)


@dataclass(frozen=True)
class Placement:
    """Where a job's (last) attempt runs (``JobStatus.placement``, set when the job starts on a device):
    ``executor`` "local" (a worker process of the service) or "ray" (an actor on a Ray cluster),
    ``node`` (the service's host name, or the Ray node id) and ``device`` ("cuda:0", "cpu", or the
    actor's logical GPU)."""

    executor: str
    node: str
    device: str

    @classmethod
    def of(cls, job: Any) -> Placement | None:
        """The placement of a job resource (or of its ``status``); None while it has not started."""
        status = getattr(job, "status", job)
        if status is None or not status.HasField("placement") or not status.placement.executor:
            return None
        where = status.placement
        return cls(where.executor, where.node, where.device)

    def __str__(self) -> str:
        return f"{self.executor} on {self.node} ({self.device})"


@dataclass(frozen=True)
class Cost:
    """What a job costs in credits (``JobStatus.cost``): ``estimated`` at create, from the price
    list and the parameters; ``credits`` charged once ``final`` (the account service recorded the
    job's end: SUCCEEDED pays its measured work, CANCELLED the work done before the cancel, FAILED
    is refunded, 0)."""

    estimated: int
    credits: int
    final: bool

    @classmethod
    def of(cls, job: Any) -> Cost:
        """The cost of a job resource (or of its ``status``)."""
        status = getattr(job, "status", job)
        cost = status.cost
        return cls(int(cost.estimated_credits), int(cost.credits), bool(cost.final))

    def __str__(self) -> str:
        if self.final:
            return f"{self.credits} credits (estimated {self.estimated})"
        return f"~{self.estimated} credits (estimated; charged when the job ends)"


@dataclass(frozen=True)
class JobProgress:
    """One progress update of a job.

    ``snapshot`` is True for the job as the server reported it when the watch (re)started.
    ``job`` is the job resource on snapshots and on the final, terminal update (fetched after the
    terminal event so that ``job.result`` is set).
    """

    kind: str
    job_id: str
    sequence: int
    state: JobState
    stage: Stage
    step: int = 0
    total_steps: int = 0
    frame: int = 0
    total_frames: int = 0
    queue_position: int = 0
    fraction: float = 0.0
    fps: float = 0.0
    speed: float = 0.0
    eta_seconds: float | None = None
    message: str = ""
    preview_jpeg: bytes = b""
    error: Any = None
    snapshot: bool = False
    job: Any = None
    # Training steps: "loss", "learning_rate", "grad_norm"; checkpoints: "checkpoint_step".
    metrics: Mapping[str, float] = field(default_factory=dict)
    # An asset the event announces (a training checkpoint).
    asset_id: str = ""

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    @property
    def placement(self) -> Placement | None:
        """Where the job runs, on updates that carry the job (snapshots and the final update)."""
        return Placement.of(self.job) if self.job is not None else None

    @property
    def cost(self) -> Cost | None:
        """The job's cost, on updates that carry the job (snapshots and the final update)."""
        return Cost.of(self.job) if self.job is not None else None

    @classmethod
    def _from(cls, kind: str, job_id: str, sequence: int, state: int, progress: Any, error: Any, **extra: Any) -> JobProgress:
        eta = progress.eta.ToNanoseconds() / 1e9 if progress.HasField("eta") else None
        return cls(
            kind=kind,
            job_id=job_id,
            sequence=sequence,
            state=_enum(JobState, state),
            stage=_enum(Stage, progress.stage),
            step=progress.step,
            total_steps=progress.total_steps,
            frame=progress.frame,
            total_frames=progress.total_frames,
            queue_position=progress.queue_position,
            fraction=progress.fraction,
            fps=progress.fps,
            speed=progress.speed,
            eta_seconds=eta,
            message=progress.message,
            preview_jpeg=progress.preview_jpeg,
            metrics=dict(progress.metrics),
            asset_id=progress.asset_id,
            error=error if error is not None and error.ByteSize() else None,
            **extra,
        )

    @classmethod
    def from_event(cls, kind: str, job_id: str, event: job_pb2.JobEvent) -> JobProgress:
        return cls._from(kind, job_id, event.sequence, event.state, event.progress, event.error)

    @classmethod
    def from_job(cls, kind: str, job: Any) -> JobProgress:
        st = job.status
        return cls._from(kind, job.id, st.last_sequence, st.state, st.progress, st.error, snapshot=True, job=job)

    def with_job(self, job: Any) -> JobProgress:
        return JobProgress(**{**self.__dict__, "job": job})

    def counter(self) -> tuple[int, int] | None:
        """The (done, total) pair that best describes the current stage, if any."""
        if self.total_steps and self.stage in (Stage.DENOISING, Stage.UNSPECIFIED):
            return self.step, self.total_steps
        if self.total_frames:
            return self.frame, self.total_frames
        if self.total_steps:
            return self.step, self.total_steps
        return None

    def describe(self) -> str:
        """A one-line human description ("denoising step 3/25", "queued #2")."""
        if self.state.terminal:
            return self.state.name.lower()
        if self.stage is Stage.QUEUED or (self.state is JobState.QUEUED and self.stage is Stage.UNSPECIFIED):
            return f"queued #{self.queue_position}" if self.queue_position else "queued"
        text = self.stage.label if self.stage is not Stage.UNSPECIFIED else self.state.name.lower()
        counts = self.counter()
        if counts is not None:
            unit = "step" if self.total_steps and counts[1] == self.total_steps and self.stage is Stage.DENOISING else "frame"
            text += f" {unit} {counts[0]}/{counts[1]}"
        if self.message:
            text += f" ({self.message})"
        return text
