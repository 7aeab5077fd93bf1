"""Render service configuration (loaded from ``VIARTE_RENDER_*`` by the kit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.kit.config import ConfigError, ServiceConfig

__all__ = ["EXECUTORS", "RenderConfig"]

# Where render and upscale work runs (issue 15): "local" = ffmpeg subprocesses and upscaler worker
# processes on this machine; "ray" = one actor per GPU on a Ray cluster (services/render/ray_runner.py).
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class RenderConfig(ServiceConfig):
    service_name = "render"

    port: int = 50054
    # "" = sqlite:///<data_dir>/render.db
    database_url: str = ""
    # Scratch space for renders; "" = <data_dir>/render-work. Every job uses its own subfolder,
    # removed when the job ends, whatever the outcome.
    work_dir: str = ""
    ffmpeg_binary: str = "ffmpeg"
    ffprobe_binary: str = "ffprobe"
    # Limits checked before any work.
    max_width: int = 3840
    max_height: int = 2160
    max_fps: float = 60.0
    max_duration_seconds: float = 600.0
    max_tracks: int = 32
    max_clips: int = 500
    # "auto" = NVENC when a trial encode succeeds, else libx264/libx265; or a codec name.
    video_encoder: str = "auto"
    # Encoder threads for x264; 0 = ffmpeg's choice.
    encoder_threads: int = 0
    default_font_family: str = "DejaVu Sans"
    # Seconds a RenderFrame preview may take.
    frame_timeout_seconds: float = 30.0
    # AnalyzeMedia (issue 18): the longest media it takes, the most seconds one analysis may run
    # (its worker process is killed then), and how many run at once (each takes a core).
    analyze_max_seconds: float = 600.0
    analyze_timeout_seconds: float = 300.0
    analyze_concurrency: int = 1
    # Playback (issue 19): draft segments of this many seconds at this height (fragmented MP4),
    # cached in the render database up to this many bytes (least recently used evicted first).
    draft_segment_seconds: float = 2.0
    draft_height: int = 360
    draft_cache_max_bytes: int = 512 * 1024 * 1024
    # Draft renders one replica runs at once (each is one ffmpeg); more callers wait their turn.
    draft_concurrency: int = 2
    # Presigned URL lifetime for inputs read by ffmpeg.
    input_url_expire_seconds: int = 3600
    # Jobs.
    max_queued_jobs: int = 64
    # N replicas on one PostgreSQL (issue 14): this replica's stable name in job leases ("" =
    # <hostname>-<pid>; the dev runner sets VIARTE_RENDER_REPLICA_ID=render-1 ...), how long a
    # running job's lease lasts unrenewed, and the fallback poll when notifications are down.
    replica_id: str = ""
    job_lease_seconds: float = 10.0
    job_poll_seconds: float = 2.0
    render_workers: int = 1
    upscale_workers: int = 1
    # Upscaler (Real-ESRGAN x2). The model folder holds <model>.pth files.
    model_dir: str = ".cache/models"
    upscale_model: str = "realesrgan-x2plus"
    # "auto" = cuda when available, else cpu.
    upscale_device: str = "auto"
    upscale_batch_size: int = 4
    upscale_fp16: bool = True
    # Build the tiny random-weight model when the real weights are missing (offline/dev).
    upscale_allow_tiny: bool = True
    # Seconds an upscaler worker process stays warm (torch imported, weights loaded) after a job;
    # 0 = a new process per job.
    upscale_worker_idle_seconds: float = 300.0
    # x264 CRF of upscaled videos (0 = lossless).
    upscale_crf: int = 18
    # Executor: "local" or "ray" (actors on a Ray cluster). Same RPCs, events and results either
    # way; the server imports ray only for "ray" (never torch: the actors import it).
    executor: str = "local"
    # The Ray cluster (mesh-wide VIARTE_RAY_ADDRESS): "auto", "ray://host:10001", or "" = start a
    # local one (one logical GPU per NVIDIA GPU found, or one on a CPU machine).
    ray_address: str = ""
    # Actors this replica creates, one per GPU (num_gpus=1); 0 = one per GPU of the cluster at start.
    ray_actors: int = 0
    # The part of its GPU each actor reserves: 0.5 leaves the other half to inference's actor on the
    # same GPU (VIARTE_INFERENCE_RAY_GPU_SHARE); 1 when render has the cluster's GPUs to itself.
    ray_gpu_share: float = 0.5
    ray_connect_timeout_seconds: float = 120.0
    # How often a lost actor (its node died) is probed until Ray has restarted it somewhere.
    ray_probe_seconds: float = 1.0
    # An actor that ignores a cancel this long is killed (Ray restarts it).
    ray_cancel_grace_seconds: float = 10.0
    # An actor that reports nothing (no frame, no ffmpeg progress) this long is killed and the job
    # retried, WORKER_STALLED (as inference's worker_stall_timeout_seconds); 0 = never.
    ray_stall_seconds: float = 600.0
    # One job split over several workers: at most this many (Ray: the free actors when the job
    # starts, at least one; local: concurrent ffmpegs for a split render). 1 = never split.
    split_max_workers: int = 2
    # A render is split when its timeline is longer than this (seconds); 0 = never.
    render_split_seconds: float = 60.0
    # An upscale (Ray only) is split when the video has at least this many frames.
    upscale_split_min_frames: int = 64

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"VIARTE_RENDER_EXECUTOR: {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.split_max_workers < 1 or self.ray_actors < 0:
            raise ConfigError("VIARTE_RENDER_SPLIT_MAX_WORKERS must be at least 1, VIARTE_RENDER_RAY_ACTORS at least 0")
        if not 0 < self.ray_gpu_share <= 1:
            raise ConfigError("VIARTE_RENDER_RAY_GPU_SHARE: must be above 0 and at most 1")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or self.sqlite_url()

    @property
    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.data_dir) / "render-work"
