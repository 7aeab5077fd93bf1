"""Test media for the tiny face models: frames with/without a face, videos with audio."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from services.inference.faceswap.tiny import face_image

__all__ = ["face_image", "image_bytes", "make_video", "read_video_frames"]


def image_bytes(frame: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format=fmt)
    return buf.getvalue()


def make_video(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = True) -> Path:
    """An H.264 MP4 of `frames` (lossless-ish, crf 0), with a 440 Hz AAC tone when `audio`."""
    h, w, _ = frames[0].shape
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={len(frames) / fps}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv444p", "-shortest", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def read_video_frames(path: Path, width: int, height: int) -> list[np.ndarray]:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout
    size = width * height * 3
    return [np.frombuffer(raw[i : i + size], np.uint8).reshape(height, width, 3) for i in range(0, len(raw), size)]
