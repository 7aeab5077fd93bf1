"""Frames → H.264 MP4 through an ffmpeg pipe, one frame at a time."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from services.kit.media_input import media_input, scrub

__all__ = ["EncodeError", "Mp4Encoder", "decode_mp4", "encode_mp4"]

logger = logging.getLogger(__name__)


class EncodeError(RuntimeError):
    pass


class Mp4Encoder:
    """An ffmpeg H.264 encoder started ahead of its frames: starting one costs about 0.1 s of CPU
    (the dynamic loader resolving ffmpeg's libraries), which a caller overlaps with producing the
    frames (the VAE decode). ``encode`` feeds it and waits; ``kill`` abandons it."""

    def __init__(self, path: Path, *, width: int, height: int, fps: int, crf: int = 18) -> None:
        self.path, self.width, self.height = path, width, height
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            # Single-threaded x264 is deterministic: the same frames always give the same file.
            "-threads", "1", "-movflags", "+faststart", str(path),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def encode(self, frames: Iterable[np.ndarray], total: int, on_frame: Callable[[int, int], None] | None = None) -> None:
        """Encodes RGB uint8 frames (H, W, 3); ``on_frame(i, total)`` after each frame."""
        proc, width, height = self.proc, self.width, self.height
        assert proc.stdin is not None
        try:
            for i, frame in enumerate(frames, 1):
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise EncodeError(f"frame {i} is {frame.shape} {frame.dtype}, want ({height}, {width}, 3) uint8")
                proc.stdin.write(np.ascontiguousarray(frame).tobytes())
                if on_frame is not None:
                    on_frame(i, total)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            self.kill()
            raise
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            # stderr names the output path (and whatever ffmpeg touched): whole in the log, scrubbed in
            # the error, which becomes the job error the client sees.
            logger.error("ffmpeg encode to %s failed: %s", self.path, stderr.strip()[-2000:])
            raise EncodeError(f"ffmpeg failed: {scrub(stderr, limit=500)}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def encode_mp4(
    frames: Iterable[np.ndarray],
    path: Path,
    *,
    width: int,
    height: int,
    fps: int,
    total: int,
    on_frame: Callable[[int, int], None] | None = None,
    crf: int = 18,
) -> None:
    """Encodes RGB uint8 frames (H, W, 3) to ``path``; ``on_frame(i, total)`` after each frame."""
    Mp4Encoder(path, width=width, height=height, fps=fps, crf=crf).encode(frames, total, on_frame)


def decode_mp4(source: Path | str | bytes, width: int, height: int) -> np.ndarray:
    """All frames of an MP4 (a path or the file's bytes) as (F, H, W, 3) uint8 (tests and benches)."""
    data = source if isinstance(source, bytes) else None
    inp = media_input("video/mp4", "-" if data is not None else str(source))
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", *inp.ffmpeg_args(), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, input=data,
    ).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, height, width, 3)
