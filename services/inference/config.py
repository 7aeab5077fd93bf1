"""InferenceConfig: the inference service's config, composed of frozen parts.

Each field is declared once, in the part it configures: `WorkerConfig` (device workers, with the
face models of `FaceSwapConfig`) and `AssistantConfig`. The parts are dataclass bases rather than
nested fields so that the kit's loader, the deploy files and the mesh keep the flat environment
names (``VIARTE_INFERENCE_FACE_PACK``, ``VIARTE_INFERENCE_ASSISTANT_API_KEY`` ...); `config.worker`,
`config.face` and `config.assistant` hand one part on whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.inference.assistant.config import AssistantConfig
from services.inference.faceswap.config import FaceSwapConfig
from services.inference.worker.config import REPO_ROOT, WorkerConfig
from services.kit.config import ConfigError, ServiceConfig

__all__ = ["EXECUTORS", "REPO_ROOT", "InferenceConfig"]

# Where device work runs (issue 15): "local" = one worker process per device of this machine;
# "ray" = one actor per GPU on a Ray cluster (services/inference/worker/ray_runner.py).
EXECUTORS = ("local", "ray")

P = TypeVar("P")


@dataclass(frozen=True)
class InferenceConfig(AssistantConfig, WorkerConfig, ServiceConfig):
    service_name = "inference"

    port: int = 50053
    metrics_port: int = 9103
    # "" = sqlite:///<data_dir>/inference.db
    database_url: str = ""
    # Only serve these model ids (empty = all in the registry).
    models: tuple[str, ...] = ()
    # One worker process per device: "cpu", "cuda:0", ...; "auto" = every CUDA device, else cpu.
    devices: tuple[str, ...] = ("auto",)
    max_queued: int = 100
    max_attempts: int = 3
    queue_full_retry_seconds: float = 5.0
    max_priority: int = 10
    # N replicas on one PostgreSQL (issue 14): this replica's stable name in job leases ("" =
    # <hostname>-<pid>; the dev runner sets VIARTE_INFERENCE_REPLICA_ID=inference-1 ...), how
    # long a running job's lease lasts unrenewed, and the fallback poll when notifications are down.
    replica_id: str = ""
    job_lease_seconds: float = 10.0
    job_poll_seconds: float = 2.0
    # Executor: "local" (worker processes, `devices`) or "ray" (actors on a Ray cluster). Same RPCs,
    # events and results either way; the server imports ray only for "ray".
    executor: str = "local"
    # The Ray cluster: "auto" (a cluster this node belongs to), "ray://host:10001" (Ray Client), or
    # "" = start a local one (one logical GPU per NVIDIA GPU found, or one on a CPU machine).
    ray_address: str = ""
    # Actors this replica creates, one per GPU (num_gpus=1); 0 = one per GPU of the cluster at start.
    # Several replicas on one cluster each set their share.
    ray_actors: int = 0
    # The part of its GPU each actor reserves: 0.5 leaves the other half to render's actor on the same
    # GPU (VIARTE_RENDER_RAY_GPU_SHARE); 1 when inference has the cluster's GPUs to itself.
    ray_gpu_share: float = 0.5
    # Connecting to the cluster and the actors' start (model stack imports) must finish within this;
    # past it Create answers UNAVAILABLE (RAY_UNAVAILABLE) and the connection is retried.
    ray_connect_timeout_seconds: float = 120.0
    # How often a lost actor (its node died) is probed until Ray has restarted it somewhere.
    ray_probe_seconds: float = 1.0
    # Kept latents (S3, via storage) whose job is finished or gone are deleted by a sweep this often
    # (0 = never), looking at most `kept_latents_sweep_batch` objects a run (latents_sweep.py).
    kept_latents_sweep_seconds: float = 300.0
    kept_latents_sweep_batch: int = 500

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"VIARTE_INFERENCE_EXECUTOR: {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.ray_actors < 0:
            raise ConfigError("VIARTE_INFERENCE_RAY_ACTORS: must be 0 (one per GPU) or more")
        if not 0 < self.ray_gpu_share <= 1:
            raise ConfigError("VIARTE_INFERENCE_RAY_GPU_SHARE: must be above 0 and at most 1")
        if self.omp_wait_policy not in ("auto", "passive", "active", ""):
            raise ConfigError("VIARTE_INFERENCE_OMP_WAIT_POLICY: must be auto, passive, active or empty")
        if self.worker_threads < 0 or self.training_threads < 0:
            raise ConfigError("VIARTE_INFERENCE_WORKER_THREADS and VIARTE_INFERENCE_TRAINING_THREADS: must be 0 (auto) or more")
        if self.training_dtype not in ("auto", "fp32", "bf16"):
            raise ConfigError("VIARTE_INFERENCE_TRAINING_DTYPE: must be auto, fp32 or bf16")
        if not 0 <= self.event_batch_seconds <= 1:
            raise ConfigError("VIARTE_INFERENCE_EVENT_BATCH_SECONDS: must be within [0, 1]")
        if self.kept_latents_sweep_seconds < 0 or not 1 <= self.kept_latents_sweep_batch <= 1000:
            raise ConfigError("VIARTE_INFERENCE_KEPT_LATENTS_SWEEP_SECONDS must be 0 (off) or more and "
                              "VIARTE_INFERENCE_KEPT_LATENTS_SWEEP_BATCH within [1, 1000]")

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url()

    @property
    def scratch_path(self) -> Path:
        return Path(self.data_dir) / "inference"

    @property
    def worker(self) -> WorkerConfig:
        return self._part(WorkerConfig)

    @property
    def face(self) -> FaceSwapConfig:
        return self._part(FaceSwapConfig)

    @property
    def assistant(self) -> AssistantConfig:
        return self._part(AssistantConfig)

    def _part(self, cls: type[P]) -> P:
        """The part `cls` alone (no secret or address of the service rides along)."""
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
