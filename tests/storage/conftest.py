"""Tiny real media files for the storage tests, encoded once per session with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# name -> (content type, ffmpeg output args); inputs are lavfi test sources (64x48 video, 0.5 s).
_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=0.5"]
_AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5:sample_rate=22050"]
SAMPLES: dict[str, tuple[str, list[str]]] = {
    "image.png": ("image/png", [*_VIDEO, "-frames:v", "1"]),
    "image.jpg": ("image/jpeg", [*_VIDEO, "-frames:v", "1"]),
    "image.webp": ("image/webp", [*_VIDEO, "-frames:v", "1", "-c:v", "libwebp"]),
    "video.mp4": ("video/mp4", [*_VIDEO, *_AUDIO, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]),
    "video.webm": ("video/webm", [*_VIDEO, "-c:v", "libvpx", "-b:v", "200k"]),
    "video.mov": ("video/quicktime", [*_VIDEO, "-c:v", "mjpeg"]),
    "audio.mp3": ("audio/mpeg", [*_AUDIO, "-c:a", "libmp3lame"]),
    "audio.wav": ("audio/wav", [*_AUDIO]),
    "audio.aac": ("audio/aac", [*_AUDIO, "-c:a", "aac", "-f", "adts"]),
    "audio.ogg": ("audio/ogg", [*_AUDIO, "-c:a", "libvorbis"]),
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("media")
    for name, (_, args) in SAMPLES.items():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(out / name)], check=True, timeout=60
        )
    return out


@pytest.fixture(scope="session")
def samples(media_dir: Path) -> dict[str, tuple[str, bytes]]:
    """name -> (content type, bytes)."""
    return {name: (ctype, (media_dir / name).read_bytes()) for name, (ctype, _) in SAMPLES.items()}
