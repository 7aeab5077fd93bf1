"""Validation and planning of a clip's looks (LUT, exposure, temperature, curves, vignette,
sharpen, grain, chroma key, blend mode), of transitions by name with easing, and of the mix's
loudness. Every field is checked with its path before anything reaches ffmpeg; a feature the
installed ffmpeg lacks (``capabilities``) is refused at its field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from services.kit.cube_lut import CubeLut
from services.render.capabilities import BLEND_MODES, CURVES_PRESETS, FALLBACK_TRANSITIONS, Capabilities
from services.render.timeline import plan as P
from services.render.timeline.style import parse_color, valid_color
from viarte.render.v1 import timeline_pb2 as tl

if TYPE_CHECKING:
    from services.render.timeline.checks import Checks

__all__ = [
    "DEFAULT_LOUDNESS",
    "check_looks",
    "check_mix",
    "check_transition",
    "lut_asset_ids",
    "plan_looks",
    "plan_loudness",
    "plan_transition",
    "transition_name",
]

DEFAULT_LOUDNESS = -14.0
_KIND_NAMES = dict(zip(range(1, 11), FALLBACK_TRANSITIONS, strict=True))  # TransitionKind 1..10
_TRANSITION_EASINGS = {
    tl.EASING_UNSPECIFIED: "linear",
    tl.EASING_LINEAR: "linear",
    tl.EASING_EASE_IN: "ease_in",
    tl.EASING_EASE_OUT: "ease_out",
    tl.EASING_EASE_IN_OUT: "ease_in_out",
}
_CURVES = dict(zip(range(1, len(CURVES_PRESETS) + 1), CURVES_PRESETS, strict=True))
_BLENDS = {0: "normal"} | dict(zip(range(1, len(BLEND_MODES) + 1), BLEND_MODES, strict=True))
# (field, low, high): 0 is always "off".
_RANGES = (("exposure", -3.0, 3.0), ("vignette", 0.0, 1.0), ("sharpen", 0.0, 5.0), ("grain", 0.0, 100.0))
# Which capability each field needs.
_NEEDS = {"exposure": "exposure", "vignette": "vignette", "sharpen": "sharpen", "grain": "grain", "temperature_kelvin": "temperature"}
# Keyframed looks: (keyframes field, the constant field it replaces, low, high).
_CURVE_FIELDS = (
    ("exposure_keyframes", "exposure", -3.0, 3.0),
    ("temperature_keyframes", "temperature_kelvin", 1000.0, 40000.0),
    ("vignette_keyframes", "vignette", 0.0, 1.0),
)
_MAX_SECONDS = 86400.0  # as checks.MAX_SECONDS (imported from there would be circular)


def transition_name(t: tl.Transition) -> str | None:
    """The xfade transition a Transition asks for (None when it names none)."""
    if t.name:
        return t.name
    return _KIND_NAMES.get(t.kind)


def check_transition(checks: Checks, path: str, t: tl.Transition, caps: Capabilities) -> None:
    if t.name and t.kind != tl.TRANSITION_KIND_UNSPECIFIED:
        checks.check(_KIND_NAMES.get(t.kind) == t.name, f"{path}.name", "kind and name name different transitions: set one")
    name = transition_name(t)
    if t.name:
        shown = ", ".join(caps.transitions[:8])
        checks.check(
            t.name in caps.transitions, f"{path}.name",
            f"unknown transition {t.name[:40]!r}; ListCapabilities lists the {len(caps.transitions)} available ({shown}, ...)",
        )
    elif name is None:
        checks.check(False, f"{path}.kind", "unknown transition")
    else:
        checks.check(name in caps.transitions, f"{path}.kind", "this transition is not available in the installed ffmpeg")
    checks.check(t.easing in _TRANSITION_EASINGS, f"{path}.easing", "unknown easing")


def plan_transition(t: tl.Transition) -> P.Transition | None:
    name = transition_name(t)
    if name is None:
        return None
    return P.Transition(name, 0, _TRANSITION_EASINGS.get(t.easing, "linear"))


def lut_asset_ids(timeline: tl.Timeline) -> list[str]:
    """Distinct LUT assets the timeline's clips use, in order of appearance."""
    seen: dict[str, None] = {}
    for track in timeline.tracks:
        for clip in track.clips:
            if clip.filters.lut_asset_id:
                seen.setdefault(clip.filters.lut_asset_id, None)
    return list(seen)


def check_looks(
    checks: Checks, path: str, f: tl.ClipFilters, kind: int, caps: Capabilities, max_keyframes: int = 100
) -> None:
    """The look fields of one clip's filters (``path`` = ``...clips[i].filters``)."""
    looks_used = bool(f.lut_asset_id or f.exposure or f.temperature_kelvin or f.curves or f.vignette or f.sharpen
                      or f.grain or f.HasField("chroma_key") or f.blend_mode or f.stabilize or f.HasField("look_intensity")
                      or any(getattr(f, name) for name, _, _, _ in _CURVE_FIELDS))
    if kind != tl.TRACK_KIND_VIDEO:
        checks.check(not looks_used, path, "looks (LUT, exposure, key, blend, ...) are for video tracks")
        return
    _check_animated_looks(checks, path, f, caps, max_keyframes)
    for name, lo, hi in _RANGES:
        value = getattr(f, name)
        if checks.check(math.isfinite(value) and lo <= value <= hi, f"{path}.{name}", f"must be in [{lo:g}, {hi:g}]") and value:
            checks.check(caps.has(_NEEDS[name]), f"{path}.{name}", "not available in the installed ffmpeg")
    k = f.temperature_kelvin
    if checks.check(math.isfinite(k) and (k == 0 or 1000 <= k <= 40000), f"{path}.temperature_kelvin", "must be 0 or in [1000, 40000]") and k:
        checks.check(caps.has("temperature"), f"{path}.temperature_kelvin", "not available in the installed ffmpeg")
    if checks.check(f.curves in _CURVES or f.curves == 0, f"{path}.curves", "unknown curves preset") and f.curves:
        checks.check(caps.has("curves"), f"{path}.curves", "not available in the installed ffmpeg")
    if checks.check(f.blend_mode in _BLENDS, f"{path}.blend_mode", "unknown blend mode") and _BLENDS[f.blend_mode] != "normal":
        checks.check(caps.has("blend_mode"), f"{path}.blend_mode", "not available in the installed ffmpeg")
    if f.lut_asset_id:
        checks.check(len(f.lut_asset_id) <= 200, f"{path}.lut_asset_id", "at most 200 characters")
        checks.check("cube" in caps.lut_formats, f"{path}.lut_asset_id", "LUTs are not available in the installed ffmpeg")
    if f.HasField("chroma_key"):
        _check_key(checks, f"{path}.chroma_key", f.chroma_key, caps)
    if f.stabilize:
        checks.check(caps.has("stabilize"), f"{path}.stabilize", "the installed ffmpeg has no vidstab")


def _check_keyframes(
    checks: Checks, path: str, kfs: Sequence[tl.Keyframe], lo: float, hi: float, max_keyframes: int
) -> None:
    """Values in [lo, hi], times finite, >= 0 and strictly increasing, known easings."""
    if not checks.check(len(kfs) <= max_keyframes, path, f"at most {max_keyframes} keyframes"):
        return  # one violation, not one per keyframe
    last = -1.0
    for ki, kf in enumerate(kfs):
        kpath = f"{path}[{ki}]"
        checks.check(math.isfinite(kf.value) and lo <= kf.value <= hi, f"{kpath}.value", f"must be in [{lo:g}, {hi:g}]")
        t = kf.time_seconds
        if checks.check(math.isfinite(t) and 0 <= t <= _MAX_SECONDS, f"{kpath}.time_seconds", f"must be in [0, {_MAX_SECONDS:g}] seconds"):
            checks.check(t > last, f"{kpath}.time_seconds", "keyframes must be in increasing time order")
            last = t
        checks.check(kf.easing in _TRANSITION_EASINGS, f"{kpath}.easing", "unknown easing")


def _check_animated_looks(checks: Checks, path: str, f: tl.ClipFilters, caps: Capabilities, max_keyframes: int) -> None:
    for name, constant, lo, hi in _CURVE_FIELDS:
        kfs = getattr(f, name)
        if not kfs:
            continue
        _check_keyframes(checks, f"{path}.{name}", kfs, lo, hi, max_keyframes)
        checks.check(not getattr(f, constant), f"{path}.{constant}", f"set either {constant} or {name}")
        checks.check(caps.has(_NEEDS[constant]), f"{path}.{name}", "not available in the installed ffmpeg")
    if f.HasField("look_intensity"):
        v = f.look_intensity
        checks.check(math.isfinite(v.value) and 0 <= v.value <= 1, f"{path}.look_intensity.value", "must be in [0, 1]")
        _check_keyframes(checks, f"{path}.look_intensity.keyframes", v.keyframes, 0.0, 1.0, max_keyframes)


def _curve(kfs: Sequence[tl.Keyframe]) -> P.Animated | None:
    if not kfs:
        return None
    keys = tuple(P.Keyframe(k.time_seconds, k.value, _TRANSITION_EASINGS.get(k.easing, "linear")) for k in kfs)
    return P.Animated(keys[0].value, keys)


def _intensity(f: tl.ClipFilters) -> P.Animated:
    if not f.HasField("look_intensity"):
        return P.Animated(1.0)
    return _curve(f.look_intensity.keyframes) or P.Animated(f.look_intensity.value)


def _check_key(checks: Checks, path: str, key: tl.ChromaKey, caps: Capabilities) -> None:
    checks.check(caps.has("chroma_key"), path, "not available in the installed ffmpeg")
    color_ok = checks.check(bool(key.color) and valid_color(key.color, empty_ok=False), f"{path}.color", "must be #rrggbb")
    checks.check(math.isfinite(key.similarity) and (key.similarity == 0 or 0.01 <= key.similarity <= 1), f"{path}.similarity", "must be in [0.01, 1] (0 = 0.1)")
    checks.check(math.isfinite(key.blend) and 0 <= key.blend <= 1, f"{path}.blend", "must be in [0, 1]")
    if checks.check(math.isfinite(key.spill) and 0 <= key.spill <= 1, f"{path}.spill", "must be in [0, 1]") and key.spill and color_ok:
        checks.check(caps.has("spill"), f"{path}.spill", "not available in the installed ffmpeg")
        checks.check(_spill_type(key.color) is not None, f"{path}.spill", "spill suppression needs a green or blue key colour")


def _spill_type(color: str) -> str | None:
    """despill's screen type: the key colour's dominant channel, green or blue."""
    h = color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    if g > r and g >= b:
        return "green"
    if b > r and b > g:
        return "blue"
    return None


def plan_looks(checks: Checks, path: str, f: tl.ClipFilters, base: P.ClipFilters, luts: Mapping[str, CubeLut | str]) -> P.ClipFilters:
    """``base`` (the older filters) plus the looks; a LUT asset that is not a valid LUT is refused here."""
    lut: CubeLut | None = None
    if f.lut_asset_id:
        found = luts.get(f.lut_asset_id)
        if isinstance(found, CubeLut):
            lut = found
        else:
            checks.check(False, f"{path}.lut_asset_id", f"is not a valid .cube 3D LUT: {found or 'not fetched'}")
    key = None
    if f.HasField("chroma_key") and f.chroma_key.color:
        k = f.chroma_key
        key = P.ChromaKey(parse_color(k.color), k.similarity or 0.1, k.blend, k.spill, _spill_type(k.color) or "green")
    from dataclasses import replace

    return replace(
        base, lut=lut, exposure=f.exposure, temperature=f.temperature_kelvin, curves=_CURVES.get(f.curves, ""),
        vignette=f.vignette, sharpen=f.sharpen, grain=f.grain, key=key, blend=_BLENDS.get(f.blend_mode, "normal"),
        stabilize=f.stabilize, exposure_curve=_curve(f.exposure_keyframes), temperature_curve=_curve(f.temperature_keyframes),
        vignette_curve=_curve(f.vignette_keyframes), intensity=_intensity(f),
    )


def check_mix(checks: Checks, timeline: tl.Timeline, caps: Capabilities) -> None:
    m = timeline.mix
    if m.HasField("loudness_target_lufs"):
        v = m.loudness_target_lufs
        checks.check(math.isfinite(v) and -70 <= v <= -5, "mix.loudness_target_lufs", "must be in [-70, -5] LUFS")
    if not m.disable_loudness_normalization:
        checks.check(caps.loudness_normalization, "mix.disable_loudness_normalization", "the installed ffmpeg has no loudnorm: disable it")


def plan_loudness(timeline: tl.Timeline) -> float | None:
    m = timeline.mix
    if m.disable_loudness_normalization:
        return None
    return m.loudness_target_lufs if m.HasField("loudness_target_lufs") else DEFAULT_LOUDNESS
