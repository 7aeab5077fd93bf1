"""InferenceConfig: generation, face swap and assistant settings of the inference service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.kit.config import Secret, ServiceConfig

__all__ = ["REPO_ROOT", "InferenceConfig"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class InferenceConfig(ServiceConfig):
    service_name = "inference"

    port: int = 50053
    metrics_port: int = 9103
    # "" = sqlite:///<data_dir>/inference.db
    database_url: str = ""
    # "" = the built-in services/inference/models/registry.yaml
    registry_path: str = ""
    # Local weights (and the tiny models); "" = <repo>/.cache/models
    models_dir: str = ""
    # Build the tiny random-weight models at startup when missing (offline default).
    build_tiny_models: bool = True
    # Only serve these model ids (empty = all in the registry).
    models: tuple[str, ...] = ()
    # One worker process per device: "cpu", "cuda:0", ...; "auto" = every CUDA device, else cpu.
    devices: tuple[str, ...] = ("auto",)
    model_cache_gib: float = 8.0
    # "auto" (chosen by free device memory) or a ladder step: default, vae_tiling, model_offload,
    # sequential_offload.
    memory_policy: str = "auto"
    # "auto" = fp16 on CUDA (bf16 where supported), bf16 on CPU; or fp32 / bf16 / fp16.
    dtype: str = "auto"
    allow_download: bool = False
    # torch intra-op threads per worker; 0 = all cores but one on CPU, torch's default on CUDA.
    worker_threads: int = 0
    max_queued: int = 100
    max_attempts: int = 3
    queue_full_retry_seconds: float = 5.0
    max_priority: int = 10
    # A worker that reports nothing on its task for this long is killed; the job is retried like a
    # crash (bounded by max_attempts). 0 = never. Real model loads are silent for minutes.
    worker_stall_timeout_seconds: float = 900.0
    # A cancelled job whose worker has not stopped after this long gets its worker killed.
    worker_cancel_grace_seconds: float = 30.0
    # Test-only fault injection: the worker dies when a job reaches this stage (e.g. STAGE_DECODING).
    fault_crash_at_stage: str = ""
    # Test-only fault injection: the worker freezes for fault_stall_seconds at this stage.
    fault_stall_at_stage: str = ""
    fault_stall_seconds: float = 3600.0

    # Face swap (services.inference.faceswap.settings.FaceSwapSettings).
    face_models_dir: str = ""
    face_pack: str = "buffalo_l"
    face_swapper: str = "inswapper_128.onnx"
    face_use_tiny: bool = False
    face_det_size: int = 640
    face_providers: tuple[str, ...] = ()

    # Assistant (services.inference.assistant.settings.AssistantSettings).
    assistant_api_key: Secret = Secret("")
    assistant_model: str = "llama-3.3-70b-versatile"
    assistant_base_url: str = "https://api.groq.com"
    assistant_chat_path: str = "/openai/v1/chat/completions"
    assistant_timeout_seconds: float = 30.0
    assistant_max_retries: int = 2
    assistant_max_retry_wait_seconds: float = 2.0
    assistant_user_requests_per_minute: int = 20
    assistant_max_output_tokens: int = 1024

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url()

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else REPO_ROOT / ".cache" / "models"

    @property
    def scratch_path(self) -> Path:
        return Path(self.data_dir) / "inference"
