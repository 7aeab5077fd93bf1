"""WorkerConfig: what a device worker process needs, one part of the inference service's config.

Declared once here (the face models in `FaceSwapConfig`, which this part includes); `InferenceConfig`
is composed of it, so the environment names stay flat (``VIARTE_INFERENCE_DTYPE``,
``VIARTE_INFERENCE_FACE_PACK`` ...), and the server hands `config.worker` to each worker whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.inference.faceswap.config import FaceSwapConfig

__all__ = ["REPO_ROOT", "WorkerConfig"]

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class WorkerConfig(FaceSwapConfig):
    # "" = the built-in services/inference/models/registry.yaml
    registry_path: str = ""
    # Local weights (and the tiny models); "" = <repo>/.cache/models
    models_dir: str = ""
    # Build the tiny random-weight models when missing (offline default); off in production.
    build_tiny_models: bool = True
    # Model cache budget per device.
    model_cache_gib: float = 8.0
    # "auto" (chosen by free device memory) or a ladder step: default, vae_tiling, model_offload,
    # sequential_offload.
    memory_policy: str = "auto"
    # "auto" = fp16 on CUDA (bf16 where supported), bf16 on a CPU that runs it natively (AVX-512)
    # and fp32 on one that does not (AVX2: ~30x slower in bf16); or fp32 / bf16 / fp16.
    dtype: str = "auto"
    # The training copy's frozen weights: "auto" = bf16 on a CUDA device that supports it (fp32 LoRA
    # parameters and optimizer state: diffusers' mixed precision LoRA recipe), fp32 elsewhere (a CPU);
    # or "fp32" / "bf16" everywhere (training/trainer.py).
    training_dtype: str = "auto"
    allow_download: bool = False
    # torch intra-op threads per worker; 0 = every core the worker may use on CPU (its affinity
    # mask), torch's default on CUDA.
    worker_threads: int = 0
    # torch intra-op threads while a training task runs on a CPU worker (its sample clips render on
    # `worker_threads`); 0 = 1 on CPU. A training step of a small model is hundreds of small ops: a
    # second OpenMP thread adds a wake per parallel region (a passive sleeper, or a preempted one
    # when the server or another process takes the core) and little compute, so one thread was both
    # faster and ~40 % cheaper in CPU per step (bench/training_overhead.py, --training-threads). CUDA
    # workers keep `worker_threads`.
    training_threads: int = 0
    # OpenMP's OMP_WAIT_POLICY in a worker, set before torch loads: "auto" = PASSIVE on a CPU worker
    # (threads that finished their share of an op sleep instead of spinning, so the server's event
    # handling and the worker's own threads never wait behind spinners), the library default on CUDA;
    # or "passive" / "active" / "" (leave the library default everywhere). See bench/inference_overhead.py.
    omp_wait_policy: str = "auto"
    # Events a worker reports faster than one per this many seconds leave together in one pipe
    # write (a training step's event every ~15 ms on a tiny model: one server wake per batch instead
    # of one per step); the first after a quiet spell leaves at once. 0 = every event on its own.
    # Local workers only (Ray actors send through Ray).
    event_batch_seconds: float = 0.05
    # Server side: a worker that reports nothing on its task for this long is killed; the job is
    # retried like a crash (bounded by max_attempts). 0 = never. Real model loads are silent for minutes.
    worker_stall_timeout_seconds: float = 900.0
    # Server side: a cancelled job whose worker has not stopped after this long (stuck in a model
    # load or a C call that never checks the flag) gets its worker killed.
    worker_cancel_grace_seconds: float = 30.0
    # Test-only fault injection: the worker dies when a job reaches this stage (e.g. STAGE_DECODING).
    fault_crash_at_stage: str = ""
    # Test-only fault injection: the worker freezes (deaf to cancel) for fault_stall_seconds here.
    fault_stall_at_stage: str = ""
    fault_stall_seconds: float = 3600.0
    # Test-only: with a path, the faults above fire only while this file does not exist (the first
    # one creates it), so a job's retry runs clean (Ray actors: a stall, then a resume).
    fault_once_marker: str = ""
    # Test-only fault injection: the worker dies right after reporting this training step (on an
    # attempt that did not resume past it).
    fault_crash_at_training_step: int = 0

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else REPO_ROOT / ".cache" / "models"

    @property
    def cache_budget_bytes(self) -> int:
        return int(self.model_cache_gib * 1024**3)
