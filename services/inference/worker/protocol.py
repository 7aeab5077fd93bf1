"""Messages between the server and a device worker (pickled over a multiprocessing pipe), and the
typed work they carry (cog's typed prediction input, one frozen dataclass per kind).

server → worker: ``RunTask(task_id, work)``, ``CancelTask``, ``Stop``
worker → server: ``Ready``, ``TaskEvent``, ``TaskDone(task_id, outcome)``, ``TaskFailed``

A work function (the worker's table in ``worker/functions.py``, keyed by ``Work.kind``) has the
signature ``def run(ctx: TaskContext, work: SomeWork) -> SomeOutcome`` and reports progress with
``ctx.emit(job_pb2.Progress(...), droppable=False)``. It raises ``ServiceError`` for failures the
job owner should see and ``ctx.raise_if_cancelled()`` / ``TaskCancelled`` to stop on cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from services.inference.models.registry import Task
from services.inference.worker.config import WorkerConfig

__all__ = [
    "CancelTask",
    "FaceSwapInputs",
    "FaceSwapOutcome",
    "FaceSwapWork",
    "GenerationOutcome",
    "GenerationSpec",
    "GenerationWork",
    "LatentsKept",
    "LoraInput",
    "Ready",
    "RunTask",
    "Stop",
    "TaskCancelled",
    "TaskDone",
    "TaskEvent",
    "TaskFailed",
    "TrainingExample",
    "TrainingOutcome",
    "TrainingWork",
    "Work",
    "WorkerSetup",
]

OutcomeT = TypeVar("OutcomeT")


class TaskCancelled(Exception):
    """Raised inside a work function that stopped because the job was cancelled."""


@dataclass(frozen=True)
class WorkerSetup:
    """What one device worker process starts with: the service's `WorkerConfig` whole, plus what
    differs per process."""

    config: WorkerConfig = field(default_factory=WorkerConfig)
    # "cpu", "cuda:0", ... or "auto" (resolved inside the worker, which may import torch).
    device: str = "cpu"
    # Kept latents and other per-job files.
    scratch_dir: Path = Path("var/inference")
    # OpenTelemetry: the worker exports its task and stage spans here ("" = tracing off).
    otlp_endpoint: str = ""


# -- typed work --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Work(Generic[OutcomeT]):
    """One unit of work for a device worker; `OutcomeT` is the outcome type its work function returns."""

    kind: ClassVar[str]


@dataclass(frozen=True)
class GenerationSpec:
    """Fully resolved generation parameters (defaults applied, seed drawn)."""

    model_id: str
    task: Task
    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    guidance_scale: float
    seed: int
    preview_every: int = 0
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    decode_chunk_size: int = 0
    flow_shift: float | None = None
    guidance_scale_2: float | None = None

    def fingerprint(self) -> str:
        import hashlib
        import json
        from dataclasses import asdict

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class FaceSwapInputs:
    """A generation job's auto face swap: the options and the face images, as bytes."""

    options: bytes  # FaceSwapOptions
    source: bytes
    reference: bytes | None = None


@dataclass(frozen=True)
class GenerationOutcome:
    frame_count: int
    width: int
    height: int
    fps: int
    seed: int
    memory_policy: str
    device: str
    timings: dict[str, float]
    # Serialized FaceSwapResult of the auto face swap; None without one.
    face_swap: bytes | None
    resumed_from_latents: bool
    # Models resident on the worker afterwards (ListModels' `loaded`).
    loaded_models: tuple[str, ...]
    # Pipelines this worker has loaded from disk since it started (LoRA switches load none).
    model_loads: int = 0
    # Unconditional passes a partner device ran for this job (``devices: 2``; 0 on one device).
    remote_passes: int = 0


@dataclass(frozen=True)
class GenerationWork(Work[GenerationOutcome]):
    kind: ClassVar[str] = "generation"

    job_id: str
    spec: GenerationSpec
    output_path: str
    # The image-to-video input image.
    image_png: bytes | None = None
    face_swap: FaceSwapInputs | None = None
    # Ray executor (kept latents in S3, not on a node's disk): a GET URL of the latents a previous
    # attempt kept ("" = none: denoise), and whether to send them back (`LatentsKept`) once denoised.
    kept_latents_url: str = ""
    ship_latents: bool = False
    loras: tuple[LoraInput, ...] = ()
    # Devices to split the job over (2: CFG-parallel on the Ray executor; worker/cfg_parallel.py).
    # Not part of the spec: the output is the same on one device or two.
    devices: int = 1


@dataclass(frozen=True)
class FaceSwapOutcome:
    output_path: str
    content_type: str
    suffix: str
    frame_count: int
    frames_swapped: int
    frames_without_face: int
    faces_swapped: int


@dataclass(frozen=True)
class FaceSwapWork(Work[FaceSwapOutcome]):
    """A face swap job's work, as local files."""

    kind: ClassVar[str] = "face_swap"

    target_path: str
    target_is_video: bool
    source_path: str
    output_dir: str
    options: bytes  # FaceSwapOptions
    # As storage sniffed and recorded it: ffmpeg opens the target as this type only.
    target_content_type: str
    reference_path: str = ""


@dataclass(frozen=True)
class LoraInput:
    """A generation's LoRA: the diffusers LoRA file's bytes, loaded once per worker under `name`."""

    name: str
    weight: float
    data: bytes


@dataclass(frozen=True)
class TrainingExample:
    data: bytes
    content_type: str
    is_video: bool
    caption: str


@dataclass(frozen=True)
class TrainingOutcome:
    # The diffusers LoRA file (the last completed step; a cancelled run's too).
    lora_path: str
    steps_completed: int
    final_loss: float
    resumed_from_step: int
    cancelled: bool
    gradient_checkpointing: bool = False
    # The training copy's frozen weights as trained ("fp32", "bf16"); the LoRA is fp32 either way.
    weights_dtype: str = "fp32"


@dataclass(frozen=True)
class TrainingWork(Work[TrainingOutcome]):
    """A LoRA training run: the examples as bytes, resolved parameters, and the checkpoint to
    resume from (adapter + optimizer state) on a retry."""

    kind: ClassVar[str] = "training"

    job_id: str
    model_id: str
    examples: tuple[TrainingExample, ...]
    width: int
    height: int
    num_frames: int
    rank: int
    alpha: float
    learning_rate: float
    steps: int
    batch_size: int
    seed: int
    checkpoint_every: int
    output_dir: str
    resume_checkpoint: bytes | None = None
    # Sample clips every N steps (0 = none) of this prompt, at the training's width and height.
    sample_every: int = 0
    sample_prompt: str = ""
    sample_inference_steps: int = 0
    sample_frames: int = 1
    # None = automatic (on when free device memory is below the model's estimate without it).
    gradient_checkpointing: bool | None = None


# -- messages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunTask:
    task_id: str
    work: Work[Any]
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
    # A local file the server stores as an asset (a training checkpoint or sample clip), announced
    # by `progress` (metrics "checkpoint_step" or "sample_step").
    artifact: str = ""
    # The artifact's bytes, when the worker's disk is not the server's (a Ray actor on any node);
    # the runner writes them to a server-side file and hands on the event naming that file.
    artifact_data: bytes | None = None


@dataclass(frozen=True)
class LatentsKept:
    """The denoised latents (``torch.save`` bytes) of a task with ``ship_latents``: the server keeps
    them in S3 until the job is done, so a retry on any node skips denoising."""

    task_id: str
    data: bytes


@dataclass(frozen=True)
class TaskDone:
    task_id: str
    outcome: Any


@dataclass(frozen=True)
class TaskFailed:
    task_id: str
    code: str
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False
    # Worth another attempt (an unexpected OS error: `ServiceError.io_failed`): the server raises
    # RetryableJobError, so the job is re-queued while attempts remain, then fails with this error.
    retryable: bool = False
