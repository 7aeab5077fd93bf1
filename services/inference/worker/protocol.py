"""Messages between the server and a device worker (pickled over a multiprocessing pipe).

server → worker: ``RunTask``, ``CancelTask``, ``Stop``
worker → server: ``Ready``, ``TaskEvent``, ``TaskDone``, ``TaskFailed``

Task functions (the worker's task table, keyed by kind) have the signature
``def run(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]`` and report progress with
``ctx.emit(job_pb2.Progress(...), droppable=False)``. They raise ``ServiceError`` for failures the
job owner should see and ``ctx.raise_if_cancelled()`` / ``TaskCancelled`` to stop on cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CancelTask",
    "Ready",
    "RunTask",
    "Stop",
    "TaskCancelled",
    "TaskDone",
    "TaskEvent",
    "TaskFailed",
    "WorkerSettings",
]


class TaskCancelled(Exception):
    """Raised inside a task that stopped because the job was cancelled."""


@dataclass(frozen=True)
class WorkerSettings:
    device: str = "cpu"
    models_dir: Path = Path(".cache/models")
    registry_path: Path | None = None
    scratch_dir: Path = Path("var/inference")
    # Model cache budget on the device (bytes).
    cache_budget_bytes: int = 8 * 1024**3
    # "auto" (by free device memory) or a ladder step name ("default", "vae_tiling", ...).
    memory_policy: str = "auto"
    dtype: str = "bf16"
    allow_download: bool = False
    # Build missing tiny models on first use (offline default); off in production.
    build_tiny_models: bool = True
    # torch intra-op threads; 0 = all cores but one on CPU (the server's), torch's default on CUDA.
    threads: int = 0
    # Server side: a task that reports nothing for this long is a hung worker: it is killed and the
    # task fails as retryable (0 = never). Generous by default: a real model load reports nothing.
    stall_timeout: float = 900.0
    # Server side: a cancelled task whose worker has not stopped after this long (stuck in a model
    # load or a C call that never checks the flag) gets its worker killed.
    cancel_grace: float = 30.0
    # Tests: kill the worker (os._exit) when a task reaches this stage name ("" = never).
    crash_at_stage: str = ""
    # Tests: the task freezes (sleeps, deaf to cancel) for stall_seconds when it reaches this stage.
    stall_at_stage: str = ""
    stall_seconds: float = 3600.0
    # Face swap models (the same names as InferenceConfig; read by services.inference.faceswap).
    face_models_dir: str = ""
    face_pack: str = "buffalo_l"
    face_swapper: str = "inswapper_128.onnx"
    face_use_tiny: bool = False
    face_det_size: int = 640
    face_providers: tuple[str, ...] = ()
    # OpenTelemetry: the worker exports its task and stage spans here too ("" = tracing off).
    otlp_endpoint: str = ""


@dataclass(frozen=True)
class RunTask:
    task_id: str
    kind: str
    payload: dict[str, Any]
    # W3C traceparent of the job's span: the worker's spans join the job's trace ("" = none).
    traceparent: str = ""


@dataclass(frozen=True)
class CancelTask:
    task_id: str


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    pid: int
    device: str
    kinds: tuple[str, ...]
    # CUDA devices this process sees (lets the server start one worker per GPU without torch).
    cuda_devices: int = 0


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    # viarte.type.v1.Progress, serialised.
    progress: bytes
    droppable: bool
    # When it happened (worker clock, µs since the epoch).
    time_us: int


@dataclass(frozen=True)
class TaskDone:
    task_id: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFailed:
    task_id: str
    code: str
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False
