"""Frames → H.264 MP4 through an ffmpeg pipe, one frame at a time."""

from __future__ import annotations

import contextlib
import logging
import queue
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from services.kit.media_input import media_input, scrub

__all__ = ["EncodeError", "FrameFeed", "Mp4Encoder", "decode_mp4", "encode_mp4"]

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


class FrameFeed:
    """Feeds an `Mp4Encoder` from a thread of its own while the caller is still producing frames
    (the VAE decode hands over each chunk it decodes): x264 then runs on the cores the decode leaves
    idle between its parallel regions instead of after the decode, and the decode never waits on the
    pipe (ffmpeg reads a frame only once it has encoded the last). ``prepare`` turns a chunk into
    uint8 frames in the feeding thread (numpy releases the GIL). The caller ``put``s chunks,
    ``close``s, then ``wait``s (``abort`` on any other way out)."""

    def __init__(self, encoder: Mp4Encoder, total: int, prepare: Callable[[np.ndarray], np.ndarray]) -> None:
        self._encoder, self._prepare = encoder, prepare
        self._chunks: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self.written, self.done = 0, False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(total,), name="mp4-feed", daemon=True)
        self._thread.start()

    def put(self, chunk: np.ndarray) -> None:
        self._chunks.put(chunk)

    def close(self) -> None:
        self._chunks.put(None)

    def wait(self, after: int, timeout: float) -> tuple[int, bool]:
        """(frames ffmpeg has taken, whether the encode is over) once it has taken more than
        ``after``, is over, or ``timeout`` passed; raises the encode's error once it is over."""
        with self._changed:
            self._changed.wait_for(lambda: self.done or self.written > after, timeout)
            written, done = self.written, self.done
        if done:
            self._thread.join()  # `done` is its last act: this returns at once, and no thread outlives the feed
            if self._error is not None:
                raise self._error
        return written, done

    def abort(self) -> None:
        self._encoder.kill()  # a blocked write fails, the feed thread ends
        self._chunks.put(None)
        self._thread.join()

    def _frames(self) -> Iterator[np.ndarray]:
        while (chunk := self._chunks.get()) is not None:
            yield from self._prepare(chunk)

    def _taken(self, i: int, total: int) -> None:
        with self._changed:
            self.written = i
            self._changed.notify_all()

    def _run(self, total: int) -> None:
        try:
            self._encoder.encode(self._frames(), total, self._taken)
        except BaseException as exc:
            self._error = exc
        finally:
            with self._changed:
                self.done = True
                self._changed.notify_all()


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
