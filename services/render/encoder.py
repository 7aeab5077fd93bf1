"""Video encoder choice: NVENC when a trial encode succeeds, else libx264/libx265; quality presets."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

__all__ = ["Codec", "EncoderOptions", "Quality", "encoder_options", "nvenc_works", "select_encoder"]


class Quality(StrEnum):
    DRAFT = "draft"
    STANDARD = "standard"
    HIGH = "high"


class Codec(StrEnum):
    H264 = "h264"
    HEVC = "hevc"


_SOFTWARE = {Codec.H264: "libx264", Codec.HEVC: "libx265"}
_NVENC = {Codec.H264: "h264_nvenc", Codec.HEVC: "hevc_nvenc"}
# (x264/x265 preset, CRF) and (NVENC preset, CQ) per quality.
_X26X = {Quality.DRAFT: ("veryfast", 28), Quality.STANDARD: ("fast", 23), Quality.HIGH: ("slow", 18)}
_NV = {Quality.DRAFT: ("p1", 30), Quality.STANDARD: ("p4", 23), Quality.HIGH: ("p7", 19)}


@dataclass(frozen=True)
class EncoderOptions:
    encoder: str
    # Output options for ffmpeg-python (``preset``, ``crf``, ...).
    options: dict[str, str | int] = field(default_factory=dict)


@lru_cache(maxsize=8)
def nvenc_works(ffmpeg: str, encoder: str) -> bool:
    """A one-frame trial encode: listing the encoder says nothing about a usable GPU and driver."""
    cmd = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=s=256x256:d=0.1",
        "-frames:v", "1", "-c:v", encoder, "-f", "null", "-",
    ]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def select_encoder(ffmpeg: str, codec: Codec, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    nvenc = _NVENC[codec]
    return nvenc if nvenc_works(ffmpeg, nvenc) else _SOFTWARE[codec]


def encoder_options(encoder: str, quality: Quality, threads: int = 0) -> EncoderOptions:
    if encoder.endswith("_nvenc"):
        preset, cq = _NV[quality]
        return EncoderOptions(encoder, {"preset": preset, "rc": "vbr", "cq": cq, "b:v": 0})
    preset, crf = _X26X[quality]
    if encoder == "libx265":
        crf += 5  # x265's CRF scale sits about 5 below x264's for the same quality
    options: dict[str, str | int] = {"preset": preset, "crf": crf}
    if threads:
        options["threads"] = threads
    return EncoderOptions(encoder, options)
