"""The face swap pipeline on local files: decode -> swap per frame -> encode (video), or one image.

Numbered steps, diffusers-style; progress callbacks may interrupt (`should_cancel`). Storage and
job bookkeeping live in `worker.py` and `handler.py`; this module only knows files, frames and the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.inference.faceswap.engine import FaceSelector, FaceSwapEngine, SourceFace, SwapStats
from services.inference.faceswap.media import (
    FrameWriter,
    decode_image,
    encode_image,
    open_input,
    probe_video,
    read_frames,
)

__all__ = ["Progress", "VideoOutput", "swap_image", "swap_video"]


@dataclass(frozen=True)
class Progress:
    """One progress tick: `stage` is "face_swap" (frame i of n) or "encoding"."""

    stage: str
    frame: int
    total_frames: int
    fps: float = 0.0


OnProgress = Callable[[Progress], None]


@dataclass(frozen=True)
class VideoOutput:
    path: Path
    stats: SwapStats
    seconds: float


def swap_video(
    engine: FaceSwapEngine,
    target: Path,
    content_type: str,
    output: Path,
    source: SourceFace,
    selector: FaceSelector,
    *,
    on_progress: OnProgress | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> VideoOutput:
    """Swaps faces in every frame of `target` (a local file of `content_type`, as storage recorded it)
    into an H.264 MP4 with the target's own audio."""
    # 1. probe (frame count for "frame i of n", fps and audio for the encoder)
    info = probe_video(target, content_type)
    source_input = open_input(target, content_type)
    total = info.frame_count
    started = time.perf_counter()
    stats = SwapStats()

    def on_frame(i: int, _stats: SwapStats) -> None:
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            on_progress(Progress("face_swap", i, max(total, i), i / elapsed if elapsed > 0 else 0.0))

    # 2. decode (thread) -> swap (here) -> encode (thread), overlapping all three
    # BGR end to end: insightface's order, so no per-frame channel swaps.
    writer = FrameWriter(
        output, info.width, info.height, info.fps, audio_from=source_input, audio_codec=info.audio_codec, pix_fmt="bgr24"
    )
    try:
        frames = read_frames(source_input, info, pix_fmt="bgr24")
        swapped = engine.swap_frames(
            frames, source, selector, on_frame=on_frame, should_cancel=should_cancel, stats=stats, bgr=True
        )
        for frame in swapped:
            writer.write(frame)
    except BaseException:
        writer.abort()
        raise
    # 3. finish encoding (mux the audio, faststart)
    if on_progress is not None:
        on_progress(Progress("encoding", stats.frame_count, stats.frame_count))
    writer.close()
    return VideoOutput(output, stats, time.perf_counter() - started)


def swap_image(
    engine: FaceSwapEngine, data: bytes, source: SourceFace, selector: FaceSelector
) -> tuple[bytes, str, str, SwapStats]:
    """Swapped image bytes in the input's format, its content type and suffix, and the stats."""
    frame, fmt = decode_image(data)
    out, faces = engine.swap_frame(frame, source, selector)
    stats = SwapStats()
    stats.add(faces)
    encoded, content_type, suffix = encode_image(out, fmt)
    return encoded, content_type, suffix, stats
