"""ffmpeg pipes for the face swap: probe, decode to RGB frames, encode H.264 with the original audio.

Decoding and encoding run in their own threads with small bounded queues so that ffmpeg works while
the models run (onnxruntime and OpenCV release the GIL); that overlap is what keeps the job path
close to a bare loop over the models.

The target is user media: ffprobe/ffmpeg open it only as the type storage recorded, from the local
file only (kit.media_input), so a playlist naming `file:///etc/...` or a URL is never followed; their
stderr is scrubbed before it goes into a job error.
"""

from __future__ import annotations

import io
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from services.kit.errors import ServiceError
from services.kit.media_input import MediaInput, UnsupportedMedia, media_input, scrub

__all__ = [
    "IMAGE_FORMATS",
    "FrameWriter",
    "VideoInfo",
    "decode_image",
    "encode_image",
    "open_input",
    "probe_video",
    "read_frames",
]

Frame = NDArray[np.uint8]
# Image outputs keep the input's format; everything else becomes PNG.
IMAGE_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}
# Audio codecs an MP4 can carry as they are; others are re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "opus", "ac3", "eac3"}
_QUEUE_FRAMES = 8
_SENTINEL = None


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frame_count: int
    audio_codec: str  # "" = no audio stream


def open_input(path: str | Path, content_type: str) -> MediaInput:
    """How ffmpeg opens the local copy of a target recorded as `content_type`."""
    try:
        return media_input(content_type, str(path))
    except UnsupportedMedia as exc:
        raise ServiceError.invalid_argument("UNSUPPORTED_MEDIA", f"cannot read the media: {exc}") from None


def _run_json(cmd: list[str]) -> dict[str, object]:
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ServiceError.invalid_argument(
            "UNSUPPORTED_MEDIA", f"cannot read the media: {scrub(proc.stderr, cmd[-1])}"
        )
    data: dict[str, object] = json.loads(proc.stdout or b"{}")
    return data


def probe_video(path: str | Path, content_type: str) -> VideoInfo:
    """Facts of the first video stream; the frame count from the container, else counted by demuxing."""
    source = open_input(path, content_type)
    info = _probe(source, count=False)
    return info if info.frame_count > 0 else _probe(source, count=True)


def _probe(source: MediaInput, *, count: bool) -> VideoInfo:
    data = _run_json(
        ["ffprobe", "-v", "error", *(["-count_packets"] if count else []), "-show_streams", "-of", "json", *source.ffprobe_args()]
    )
    streams = data.get("streams") or []
    assert isinstance(streams, list)
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise ServiceError.invalid_argument("UNSUPPORTED_MEDIA", "the target has no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    rate = Fraction(str(video.get("avg_frame_rate") or "0/1"))
    if rate <= 0:
        rate = Fraction(str(video.get("r_frame_rate") or "25/1"))
    frames = int(video.get("nb_read_packets") or video.get("nb_frames") or 0)
    return VideoInfo(
        width=int(video["width"]),
        height=int(video["height"]),
        fps=rate if rate > 0 else Fraction(25),
        frame_count=frames,
        audio_codec=str(audio.get("codec_name", "")) if audio else "",
    )


def read_frames(source: MediaInput, info: VideoInfo, pix_fmt: str = "rgb24") -> Iterator[Frame]:
    """Frames of a video (RGB, or BGR with pix_fmt="bgr24"), decoded by ffmpeg in a background thread."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", *source.ffmpeg_args(), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-vsync", "passthrough", "pipe:1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frames: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
    size = info.width * info.height * 3
    stop = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        try:
            while not stop.is_set():
                buf = proc.stdout.read(size)
                if len(buf) < size:
                    break
                frames.put(np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3))
            frames.put(_SENTINEL)
        except BaseException as exc:  # handed to the consumer
            frames.put(exc)

    thread = threading.Thread(target=pump, name="ffmpeg-decode", daemon=True)
    thread.start()
    try:
        while (item := frames.get()) is not _SENTINEL:
            if isinstance(item, BaseException):
                raise item
            yield item
        if proc.wait() != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise ServiceError.invalid_argument("UNSUPPORTED_MEDIA", f"decoding failed: {scrub(err, source.location)}")
    finally:
        stop.set()
        _drain(frames)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(timeout=5)


def _drain(q: queue.Queue[Frame | BaseException | None]) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


class FrameWriter:
    """Encodes RGB frames to H.264 MP4 in a background thread, muxing the audio of `audio_from`."""

    def __init__(
        self,
        output: str | Path,
        width: int,
        height: int,
        fps: Fraction,
        *,
        audio_from: MediaInput | None = None,
        audio_codec: str = "",
        crf: int = 18,
        preset: str = "veryfast",
        pix_fmt: str = "rgb24",
    ) -> None:
        self.width, self.height = width, height
        cmd = [
            "ffmpeg", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
        ]
        if audio_from is not None and audio_codec:
            cmd += [*audio_from.ffmpeg_args(), "-map", "0:v:0", "-map", "1:a:0"]
            cmd += ["-c:a", "copy"] if audio_codec in _MP4_AUDIO else ["-c:a", "aac", "-b:a", "192k"]
        # yuv420p needs even sizes; pad by one pixel rather than rescale.
        cmd += [
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-shortest", str(output),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="ffmpeg-encode", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc.stdin is not None
        try:
            while (buf := self._queue.get()) is not None:
                self._proc.stdin.write(buf)
        except BaseException as exc:
            self._error = exc
            _drain_bytes(self._queue)
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def write(self, frame: Frame) -> None:
        if self._error is not None:
            raise self._fail()
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame {frame.shape} != {(self.height, self.width, 3)}")
        self._queue.put(np.ascontiguousarray(frame).tobytes())

    def close(self) -> None:
        """Flushes and waits for ffmpeg; raises when encoding failed."""
        self._queue.put(None)
        self._thread.join()
        code = self._proc.wait()
        if self._error is not None or code != 0:
            raise self._fail()

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        _drain_bytes(self._queue)
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._proc.wait()

    def _fail(self) -> ServiceError:
        if self._proc.poll() is None:
            self._proc.kill()
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        return ServiceError.internal("ENCODE_FAILED", f"encoding failed: {scrub(err) or self._error}")


def _drain_bytes(q: queue.Queue[bytes | None]) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def decode_image(data: bytes) -> tuple[Frame, str]:
    """RGB pixels and the PIL format name of an encoded image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "PNG"
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy(), fmt
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ServiceError.invalid_argument("UNSUPPORTED_MEDIA", f"cannot decode the image: {exc}") from exc


def encode_image(frame: Frame, fmt: str) -> tuple[bytes, str, str]:
    """Encoded bytes, content type and file suffix; unknown formats become PNG."""
    fmt = fmt if fmt in IMAGE_FORMATS else "PNG"
    buf = io.BytesIO()
    options: dict[str, object] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(frame).save(buf, format=fmt, **options)
    content_type, suffix = IMAGE_FORMATS[fmt]
    return buf.getvalue(), content_type, suffix

