"""Media facts of timeline sources, probed with ffprobe (blocking: call through ``asyncio.to_thread``).

Sources are user media: ffprobe opens them only as the type storage recorded (kit.media_input), and
its stderr is scrubbed before it becomes a message."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from enum import StrEnum

from services.kit.media_input import UnsupportedMedia, media_input, scrub

__all__ = ["MediaError", "MediaKind", "SourceInfo", "probe"]

# Demuxers that hold one still picture.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")
_IMAGE_CODECS = ("png", "mjpeg", "webp", "bmp", "tiff", "gif")


class MediaKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"


class MediaError(Exception):
    """ffprobe could not read the source."""


@dataclass(frozen=True)
class SourceInfo:
    kind: MediaKind
    # Seconds; 0 for images.
    duration: float
    width: int = 0
    height: int = 0
    fps: float = 0.0
    has_audio: bool = False

    @property
    def has_video(self) -> bool:
        return self.kind in (MediaKind.VIDEO, MediaKind.IMAGE)


def probe(location: str, content_type: str, *, ffprobe: str = "ffprobe", timeout: float = 30.0) -> SourceInfo:
    """Probes a local path or URL holding ``content_type`` (as storage recorded it)."""
    try:
        inp = media_input(content_type, location, rw_timeout_seconds=timeout)
    except UnsupportedMedia as exc:
        raise MediaError(str(exc)) from None
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *inp.ffprobe_args()]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffprobe took longer than {timeout:g} s") from None
    except OSError as exc:
        raise MediaError(f"ffprobe failed to start: {exc.strerror}") from None
    if done.returncode != 0:
        raise MediaError(scrub(done.stderr, location, inp.location) or "ffprobe failed")
    try:
        return parse_probe(json.loads(done.stdout or b"{}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise MediaError(f"unreadable stream facts ({type(exc).__name__})") from None


def parse_probe(data: dict[str, object]) -> SourceInfo:
    streams = [s for s in data.get("streams", []) if isinstance(s, dict)]  # type: ignore[attr-defined]
    fmt = data.get("format") or {}
    assert isinstance(fmt, dict)
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError("no audio or video stream")
    duration = _float(fmt.get("duration")) or _float((video or audio or {}).get("duration"))
    if video is not None and _is_image(fmt, video):
        return SourceInfo(MediaKind.IMAGE, 0.0, int(video["width"]), int(video["height"]), 0.0, False)
    if video is None:
        return SourceInfo(MediaKind.AUDIO, duration, has_audio=True)
    return SourceInfo(
        MediaKind.VIDEO,
        duration,
        int(video["width"]),
        int(video["height"]),
        _rate(str(video.get("avg_frame_rate") or video.get("r_frame_rate") or "0/1")),
        audio is not None,
    )


def _is_cover_art(stream: dict[str, object]) -> bool:
    disposition = stream.get("disposition") or {}
    return bool(isinstance(disposition, dict) and disposition.get("attached_pic"))


def _is_image(fmt: dict[str, object], video: dict[str, object]) -> bool:
    name = str(fmt.get("format_name", ""))
    return name in _IMAGE_FORMATS or (video.get("codec_name") in _IMAGE_CODECS and not _float(fmt.get("duration")))


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _rate(text: str) -> float:
    num, _, den = text.partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0
