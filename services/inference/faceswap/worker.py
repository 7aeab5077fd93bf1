"""Face swap inside a device worker process (never imported by the server).

- `run(ctx, work)`: the work function of kind ``face_swap`` (`FaceSwapWork` → `FaceSwapOutcome`).
- `run_face_swap_work(engine, work, ...)`: the same on local files with a given engine (tests,
  benches). It checks the source face FIRST, so a source without a face fails the job with
  FAILED_PRECONDITION NO_FACE_IN_SOURCE before any frame is decoded (the server process never
  loads models, so Create cannot check faces itself).
- `swap_frames(ctx, frames, inputs)`: a generation job's auto face swap of its decoded RGB frames
  (F x H x W x 3 uint8) before encoding, as its own progress stage (STAGE_FACE_SWAP, frame i of n).

The engine is loaded once per worker (from the worker's `FaceSwapConfig`) and kept in
`ctx.resources`, shared by both kinds of work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.inference.faceswap.engine import (
    DEFAULT_SIMILARITY_THRESHOLD,
    FaceSelector,
    FaceSwapCancelled,
    FaceSwapEngine,
    SelectorMode,
    SourceFace,
    SwapStats,
    load_engine,
)
from services.inference.faceswap.media import decode_image
from services.inference.faceswap.pipeline import Progress, swap_image, swap_video
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import FaceSwapInputs, FaceSwapOutcome, FaceSwapWork, TaskCancelled
from services.kit.errors import ServiceError
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import job_pb2

__all__ = [
    "ENGINE_RESOURCE",
    "ProgressEvents",
    "prepare_swap",
    "run",
    "run_face_swap_work",
    "swap_frames",
    "worker_engine",
]

ENGINE_RESOURCE = "face_swap_engine"
_EMIT_INTERVAL = 0.1  # seconds between stored progress events (first and last always go out)
# Where the face swap stage sits in a generation job's overall fraction (after load, denoise, decode).
_BASE, _WEIGHT = 0.8, 0.1
_STAGES = {"face_swap": job_pb2.STAGE_FACE_SWAP, "encoding": job_pb2.STAGE_ENCODING}


def _selector_mode(options: face_swap_pb2.FaceSwapOptions) -> SelectorMode:
    return {
        face_swap_pb2.FACE_SELECTOR_MODE_INDEX: SelectorMode.INDEX,
        face_swap_pb2.FACE_SELECTOR_MODE_REFERENCE: SelectorMode.REFERENCE,
    }.get(options.selector, SelectorMode.ALL)


def prepare_swap(
    engine: FaceSwapEngine,
    options: face_swap_pb2.FaceSwapOptions,
    source_image: NDArray[np.uint8],
    reference_image: NDArray[np.uint8] | None = None,
) -> tuple[SourceFace, FaceSelector]:
    """The source identity and the selector; NO_FACE_IN_SOURCE / NO_FACE_IN_REFERENCE errors."""
    source = engine.source_face(source_image)
    mode = _selector_mode(options)
    reference = None
    if mode is SelectorMode.REFERENCE:
        if reference_image is None:
            raise ServiceError.invalid_argument("INVALID_PARAMETERS", "REFERENCE mode needs a reference face image")
        reference = engine.reference_embedding(reference_image)
    threshold = options.similarity_threshold or DEFAULT_SIMILARITY_THRESHOLD
    return source, FaceSelector(mode=mode, index=options.face_index, reference=reference, threshold=threshold)


def worker_engine(ctx: TaskContext) -> FaceSwapEngine:
    """The worker's face engine, loaded on first use and kept in `ctx.resources`."""
    engine = ctx.resources.get(ENGINE_RESOURCE)
    if engine is None:
        engine = ctx.resources[ENGINE_RESOURCE] = load_engine(ctx.config)
    return engine


# -- a face swap job's work -----------------------------------------------------------------------
class ProgressEvents:
    """Turns pipeline ticks into job `Progress` events; per-frame events are throttled to one per
    0.1 s (the first and the last frame always go out) so long videos do not flood the event log."""

    def __init__(self, emit: Callable[[job_pb2.Progress], None]) -> None:
        self._emit = emit
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage == "face_swap" and 1 < p.frame < p.total_frames and now - self._last < _EMIT_INTERVAL:
            return
        self._last = now
        fraction = 0.05 + 0.85 * p.frame / max(p.total_frames, 1) if p.stage == "face_swap" else 0.92
        self._emit(job_pb2.Progress(
            stage=_STAGES[p.stage], frame=p.frame, total_frames=p.total_frames, fps=p.fps, fraction=fraction
        ))


def _read_rgb(path: str) -> NDArray[np.uint8]:
    return decode_image(Path(path).read_bytes())[0]


def run_face_swap_work(
    engine: FaceSwapEngine,
    work: FaceSwapWork,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> FaceSwapOutcome:
    # 1. identities first: a source without a face fails before any frame is decoded
    options = face_swap_pb2.FaceSwapOptions.FromString(work.options)
    reference = _read_rgb(work.reference_path) if work.reference_path else None
    source, selector = prepare_swap(engine, options, _read_rgb(work.source_path), reference)
    # 2. swap: a video frame by frame through ffmpeg pipes, or one image
    if work.target_is_video:
        output = Path(work.output_dir) / "swapped.mp4"
        result = swap_video(
            engine, Path(work.target_path), work.target_content_type, output, source, selector, on_progress=on_progress, should_cancel=should_cancel
        )
        stats, content_type, suffix = result.stats, "video/mp4", ".mp4"
    else:
        data, content_type, suffix, stats = swap_image(engine, Path(work.target_path).read_bytes(), source, selector)
        output = Path(work.output_dir) / f"swapped{suffix}"
        output.write_bytes(data)
        if on_progress is not None:
            on_progress(Progress("face_swap", 1, 1))
    return FaceSwapOutcome(
        str(output), content_type, suffix, stats.frame_count, stats.frames_swapped, stats.frames_without_face, stats.faces_swapped
    )


def run(ctx: TaskContext, work: FaceSwapWork) -> FaceSwapOutcome:
    """The work function of kind ``face_swap``."""
    try:
        return run_face_swap_work(worker_engine(ctx), work, ProgressEvents(ctx.emit), lambda: ctx.cancelled)
    except FaceSwapCancelled:
        raise TaskCancelled(ctx.task_id) from None


# -- a generation job's auto face swap ------------------------------------------------------------
def swap_frames(ctx: TaskContext, frames: Any, inputs: FaceSwapInputs) -> tuple[list[Any], bytes]:
    """(swapped frames, serialized FaceSwapResult); `TaskCancelled` when the job is cancelled."""
    engine = worker_engine(ctx)
    options = face_swap_pb2.FaceSwapOptions.FromString(inputs.options)
    reference = decode_image(inputs.reference)[0] if inputs.reference else None
    source, selector = prepare_swap(engine, options, decode_image(inputs.source)[0], reference)
    started = time.perf_counter()
    frames = list(frames)
    total = len(frames)

    def on_frame(i: int, _stats: SwapStats) -> None:
        elapsed = time.perf_counter() - started
        ctx.emit(job_pb2.Progress(
            stage=job_pb2.STAGE_FACE_SWAP, frame=i, total_frames=total, fraction=_BASE + _WEIGHT * i / total,
            fps=i / elapsed if elapsed > 0 else 0.0,
        ))

    stats = SwapStats()
    try:
        out = list(engine.swap_frames(frames, source, selector, on_frame=on_frame, should_cancel=lambda: ctx.cancelled, stats=stats))
    except FaceSwapCancelled:
        raise TaskCancelled(ctx.task_id) from None
    result = face_swap_pb2.FaceSwapResult(
        frame_count=stats.frame_count, frames_swapped=stats.frames_swapped,
        frames_without_face=stats.frames_without_face, faces_swapped=stats.faces_swapped,
    )
    return out, result.SerializeToString()
