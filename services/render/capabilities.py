"""What the installed ffmpeg can do, discovered once per binary (server start) from ffmpeg itself.

Transitions are read off ``ffmpeg -hide_banner -h filter=xfade`` (its ``transition`` option's
named values), filters off ``ffmpeg -filters``, encoders off ``ffmpeg -encoders``. A feature is
listed only when the filter behind it exists, and validation accepts only what is listed, so a
timeline never asks ffmpeg for something it does not have.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "BLEND_MODES",
    "CURVES_PRESETS",
    "EASINGS",
    "FALLBACK_TRANSITIONS",
    "Capabilities",
    "capabilities",
    "parse_filters",
    "parse_transitions",
]

# The TransitionKind enum's transitions: what any ffmpeg with xfade (4.3+) has.
FALLBACK_TRANSITIONS = (
    "fade", "fadeblack", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown",
)
EASINGS = ("linear", "ease_in", "ease_out", "ease_in_out")
# ffmpeg curves presets (the CurvesPreset enum, same order).
CURVES_PRESETS = (
    "color_negative", "cross_process", "darker", "increase_contrast", "lighter",
    "linear_contrast", "medium_contrast", "negative", "strong_contrast", "vintage",
)
# BlendMode enum names → ffmpeg blend modes (the BlendMode enum, same order, NORMAL first).
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "darken", "lighten", "difference", "addition", "softlight", "hardlight")
_FEATURES = {
    "lut": ("lut3d",),
    "exposure": ("exposure",),
    "temperature": ("colortemperature",),
    "curves": ("curves",),
    "vignette": ("vignette",),
    "sharpen": ("unsharp",),
    "grain": ("noise",),
    "chroma_key": ("chromakey",),
    "spill": ("despill",),
    "blend_mode": ("blend", "alphamerge", "alphaextract"),
    "stabilize": ("vidstabdetect", "vidstabtransform"),
}
_ENCODERS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc")
_TRANSITION_LINE = re.compile(r"^\s+([a-z][a-z0-9_]*)\s+-?\d+\s+\.\.FV")
_FILTER_LINE = re.compile(r"^\s*[T.][S.][C.]\s+(\S+)\s+\S+->\S+")
_ENCODER_LINE = re.compile(r"^\s*V[F.][S.][X.][B.][D.]\s+(\S+)")


@dataclass(frozen=True)
class Capabilities:
    transitions: tuple[str, ...]
    filters: tuple[str, ...]
    lut_formats: tuple[str, ...]
    encoders: tuple[str, ...]
    loudness_normalization: bool

    def has(self, feature: str) -> bool:
        return feature in self.filters


def parse_transitions(help_text: str) -> tuple[str, ...]:
    """The named values of xfade's ``transition`` option (``custom`` excluded: it needs an
    expression, which a timeline never passes through)."""
    names: list[str] = []
    inside = False
    for line in help_text.splitlines():
        if re.match(r"^\s+transition\s+<int>", line):
            inside = True
            continue
        if inside:
            m = _TRANSITION_LINE.match(line)
            if m is None:
                break
            if m.group(1) != "custom":
                names.append(m.group(1))
    return tuple(names)


def parse_filters(listing: str) -> frozenset[str]:
    return frozenset(m.group(1) for m in map(_FILTER_LINE.match, listing.splitlines()) if m)


def _run(ffmpeg: str, *args: str) -> str:
    try:
        done = subprocess.run([ffmpeg, "-hide_banner", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


@lru_cache(maxsize=8)
def capabilities(ffmpeg: str = "ffmpeg") -> Capabilities:
    """Discovered once per binary (the server calls it at start; validation reuses the answer)."""
    transitions = parse_transitions(_run(ffmpeg, "-h", "filter=xfade")) or FALLBACK_TRANSITIONS
    installed = parse_filters(_run(ffmpeg, "-filters"))
    features = tuple(name for name, needs in _FEATURES.items() if all(f in installed for f in needs))
    encoders = {m.group(1) for m in map(_ENCODER_LINE.match, _run(ffmpeg, "-encoders").splitlines()) if m}
    return Capabilities(
        transitions=transitions,
        filters=features,
        lut_formats=("cube",) if "lut3d" in installed else (),
        encoders=tuple(e for e in _ENCODERS if e in encoders),
        loudness_normalization="loudnorm" in installed,
    )
