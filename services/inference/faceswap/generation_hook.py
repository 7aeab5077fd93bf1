"""Auto face swap inside a generation job, called by the generation task in the worker process.

`swap_frames(ctx, engine_cls, frames, options)` swaps the decoded RGB frames (F x H x W x 3 uint8)
before encoding, as its own progress stage (STAGE_FACE_SWAP, frame i of n). The engine is loaded
once per worker and kept in `ctx.resources`. Face model settings come from the worker settings'
`face_*` fields (the same names as `InferenceConfig`), defaults otherwise.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from services.inference.faceswap.engine import FaceSwapCancelled, FaceSwapEngine
from services.inference.faceswap.settings import FaceSwapConfig, load_engine
from services.inference.faceswap.task import swap_generated_frames
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import job_pb2

__all__ = ["ENGINE_RESOURCE", "face_settings", "swap_frames", "worker_engine"]

ENGINE_RESOURCE = "face_swap_engine"
# Where the face swap stage sits in a generation job's overall fraction (after load, denoise, decode).
_BASE, _WEIGHT = 0.8, 0.1


def face_settings(worker_settings: Any) -> FaceSwapConfig:
    """The worker's `face_*` settings (missing ones keep FaceSwapConfig's defaults)."""
    values = {
        f.name: getattr(worker_settings, f.name)
        for f in fields(FaceSwapConfig)
        if f.name.startswith("face_") and hasattr(worker_settings, f.name)
    }
    return FaceSwapConfig(**values)


def worker_engine(ctx: Any) -> FaceSwapEngine:
    """The worker's face engine, loaded on first use and kept in `ctx.resources`."""
    engine = ctx.resources.get(ENGINE_RESOURCE)
    if engine is None:
        engine = ctx.resources[ENGINE_RESOURCE] = load_engine(face_settings(ctx.settings))
    return engine  # type: ignore[no-any-return]


def swap_frames(ctx: Any, engine_cls: type[FaceSwapEngine], frames: Any, options: dict[str, Any]) -> tuple[list[Any], bytes]:
    """(swapped frames, serialized FaceSwapResult). `options`: {"options": FaceSwapOptions bytes,
    "source": image bytes, "reference": image bytes or None}."""
    del engine_cls  # the engine class is this module's; the parameter keeps the caller's seam
    engine = worker_engine(ctx)
    started = time.perf_counter()

    def on_frame(i: int, n: int) -> None:
        elapsed = time.perf_counter() - started
        ctx.emit(job_pb2.Progress(
            stage=job_pb2.STAGE_FACE_SWAP, frame=i, total_frames=n, fraction=_BASE + _WEIGHT * i / n,
            fps=i / elapsed if elapsed > 0 else 0.0,
        ))

    try:
        out, result = swap_generated_frames(
            engine,
            list(frames),
            face_swap_pb2.FaceSwapOptions.FromString(options["options"]),
            options["source"],
            options.get("reference"),
            on_frame=on_frame,
            should_cancel=lambda: bool(ctx.cancelled),
        )
    except FaceSwapCancelled:
        from services.inference.worker.protocol import TaskCancelled

        raise TaskCancelled(ctx.task_id) from None
    return out, result.SerializeToString()
