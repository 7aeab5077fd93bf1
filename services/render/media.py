"""Media facts of timeline sources, probed with ffprobe (blocking: call through ``asyncio.to_thread``)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from enum import StrEnum

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


def probe(location: str, *, ffprobe: str = "ffprobe", timeout: float = 30.0) -> SourceInfo:
    """Probes a local path or URL."""
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", location]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"ffprobe failed: {exc}") from exc
    if done.returncode != 0:
        raise MediaError(done.stderr.decode(errors="replace").strip()[-500:] or "ffprobe failed")
    return parse_probe(json.loads(done.stdout or b"{}"))


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
