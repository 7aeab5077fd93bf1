"""Structural checks of one track and its clips (times, order, overlaps, speed ramps, transforms,
filters), needing nothing but the message; ``validate.py`` runs them and then plans the timeline.
``Checks`` collects violations with field paths for every checking module."""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.kit.errors import Violations
from services.render.capabilities import Capabilities, capabilities
from services.render.timeline import plan as P
from services.render.timeline.looks import check_looks, check_transition
from services.render.timeline.ramp import MAX_RATE, MIN_RATE, SpeedRamp
from services.render.timeline.style import valid_color
from services.render.timeline.text import check_text_style
from viarte.render.v1 import timeline_pb2 as tl

__all__ = ["EASINGS", "MAX_SECONDS", "TRACK_KINDS", "Checks", "Limits", "check_fades", "check_track", "constant_speed", "ramp_of"]

# Any time in a timeline (a clip's start, trims, fades, keyframes, transitions): far past the
# longest render, small enough that seconds * fps stays a float and rounds to an int.
MAX_SECONDS = 86400.0
_CLIP_TIMES = ("start_seconds", "source_start_seconds", "source_end_seconds", "duration_seconds", "fade_in_seconds", "fade_out_seconds")

EASINGS = {
    tl.EASING_UNSPECIFIED: "linear",
    tl.EASING_LINEAR: "linear",
    tl.EASING_EASE_IN: "ease_in",
    tl.EASING_EASE_OUT: "ease_out",
    tl.EASING_EASE_IN_OUT: "ease_in_out",
}
TRACK_KINDS = {tl.TRACK_KIND_VIDEO: P.TrackKind.VIDEO, tl.TRACK_KIND_TEXT: P.TrackKind.TEXT, tl.TRACK_KIND_AUDIO: P.TrackKind.AUDIO}


@dataclass(frozen=True)
class Limits:
    max_width: int = 3840
    max_height: int = 2160
    max_fps: float = 60.0
    max_duration_seconds: float = 600.0
    max_tracks: int = 32
    max_clips: int = 500
    # Per animated value and per speed ramp: each keyframe becomes ffmpeg expression terms.
    max_keyframes: int = 100
    default_font_family: str = "DejaVu Sans"
    # What the installed ffmpeg offers (None: discover it from "ffmpeg" on the PATH, once).
    ffmpeg_caps: Capabilities | None = None

    @property
    def caps(self) -> Capabilities:
        return self.ffmpeg_caps or capabilities("ffmpeg")


class Checks:
    """Violations plus the most specific reason seen (CANVAS_TOO_LARGE > TIMELINE_TOO_LONG > INVALID_TIMELINE)."""

    def __init__(self) -> None:
        self.v = Violations()
        self.reason = "INVALID_TIMELINE"

    def check(self, ok: bool, path: str, description: str, reason: str | None = None) -> bool:
        if not ok:
            self.v.add(path, description)
            if reason and self.reason == "INVALID_TIMELINE":
                self.reason = reason
        return ok

    def seconds(self, path: str, value: float) -> bool:
        return self.check(math.isfinite(value) and abs(value) <= MAX_SECONDS, path, f"must be a finite number of seconds, at most {MAX_SECONDS:g}")

    def keyframes(self, path: str, count: int, limits: Limits) -> bool:
        return self.check(count <= limits.max_keyframes, path, f"at most {limits.max_keyframes} keyframes")

    def raise_if_any(self) -> None:
        self.v.raise_if_any(self.reason, None)


def check_track(checks: Checks, ti: int, track: tl.Track, limits: Limits) -> None:
    path = f"tracks[{ti}]"
    if not checks.check(track.kind in TRACK_KINDS, f"{path}.kind", "must be VIDEO, TEXT or AUDIO"):
        return
    if track.HasField("volume"):
        checks.check(math.isfinite(track.volume) and 0 <= track.volume <= 10, f"{path}.volume", "must be in [0, 10]")
    prev: tl.Clip | None = None
    prev_len = 0.0
    prev_out = 0.0  # transition length into the previous clip (a clip can't be in two overlapping transitions)
    for ci, clip in enumerate(track.clips):
        cpath = f"{path}.clips[{ci}]"
        length = _check_clip(checks, cpath, track.kind, clip, ci == 0, limits)
        if length is None:
            prev = None
            continue
        if prev is not None:
            d_in = clip.transition_in.duration_seconds if clip.HasField("transition_in") else 0.0
            prev_end = prev.start_seconds + prev_len
            checks.check(clip.start_seconds >= prev.start_seconds, f"{cpath}.start_seconds", "clips must be ordered by start time")
            if d_in > 0:
                checks.check(
                    abs(prev_end - clip.start_seconds - d_in) <= 1e-3,
                    f"{cpath}.transition_in.duration_seconds",
                    f"the clip must start exactly {d_in:g} s before tracks[{ti}].clips[{ci - 1}] ends ({prev_end:g} s)",
                )
                checks.check(
                    d_in <= length and d_in + prev_out <= prev_len + 1e-9,
                    f"{cpath}.transition_in.duration_seconds",
                    "the transition is longer than one of its clips",
                )
            else:
                checks.check(
                    clip.start_seconds >= prev_end - 1e-6,
                    f"{cpath}.start_seconds",
                    f"overlaps tracks[{ti}].clips[{ci - 1}] (ends at {prev_end:g} s) without a transition",
                )
            prev_out = d_in
        prev, prev_len = clip, length


def _check_clip(checks: Checks, path: str, kind: int, clip: tl.Clip, first: bool, limits: Limits) -> float | None:
    """Checks one clip's own fields; returns its timeline length when it can be known without the source."""
    if not all([checks.seconds(f"{path}.{name}", getattr(clip, name)) for name in _CLIP_TIMES]):
        return None
    checks.check(clip.start_seconds >= 0, f"{path}.start_seconds", "must not be negative")
    checks.check(clip.source_start_seconds >= 0, f"{path}.source_start_seconds", "must not be negative")
    if checks.check(clip.source_end_seconds >= 0, f"{path}.source_end_seconds", "must not be negative") and clip.source_end_seconds:
        checks.check(clip.source_end_seconds > clip.source_start_seconds, f"{path}.source_end_seconds", "must be after source_start_seconds")
    checks.check(clip.duration_seconds >= 0, f"{path}.duration_seconds", "must not be negative")
    speed = clip.speed if clip.HasField("speed") else 1.0
    checks.check(math.isfinite(speed) and 0.25 <= speed <= 4, f"{path}.speed", "must be in [0.25, 4]")
    ramp_ok = _check_ramp(checks, path, clip, kind, limits)
    ramp = ramp_of(clip.filters) if ramp_ok else None
    if clip.HasField("volume"):
        checks.check(math.isfinite(clip.volume) and 0 <= clip.volume <= 10, f"{path}.volume", "must be in [0, 10]")
    checks.check(clip.fade_in_seconds >= 0, f"{path}.fade_in_seconds", "must not be negative")
    checks.check(clip.fade_out_seconds >= 0, f"{path}.fade_out_seconds", "must not be negative")
    _check_transform(checks, f"{path}.transform", clip.transform, kind, limits)
    _check_filters(checks, f"{path}.filters", clip.filters)
    check_looks(checks, f"{path}.filters", clip.filters, kind, limits.caps, limits.max_keyframes)
    if clip.HasField("transition_in") and clip.transition_in.duration_seconds != 0:
        t = clip.transition_in
        checks.check(kind == tl.TRACK_KIND_VIDEO, f"{path}.transition_in", "transitions are for video tracks")
        checks.check(not first, f"{path}.transition_in", "the first clip of a track has no clip to transition from")
        check_transition(checks, f"{path}.transition_in", t, limits.caps)
        if checks.seconds(f"{path}.transition_in.duration_seconds", t.duration_seconds):
            checks.check(t.duration_seconds > 0, f"{path}.transition_in.duration_seconds", "must be positive")
    if kind == tl.TRACK_KIND_TEXT:
        checks.check(not clip.asset_id, f"{path}.asset_id", "text clips have no asset")
        checks.check(bool(clip.text.text.strip()), f"{path}.text.text", "is required")
        checks.check(len(clip.text.text) <= 2000, f"{path}.text.text", "at most 2000 characters")
        checks.check(0 <= clip.text.font_size <= 1000, f"{path}.text.font_size", "must be in [0, 1000] (0 = 48)")
        checks.check(valid_color(clip.text.color, empty_ok=True, alpha=True), f"{path}.text.color", "must be #rrggbb or #rrggbbaa")
        checks.check(valid_color(clip.text.box_color, empty_ok=True, alpha=True), f"{path}.text.box_color", "must be #rrggbb or #rrggbbaa")
        checks.check(0 <= clip.text.box_padding <= 500, f"{path}.text.box_padding", "must be in [0, 500]")
        check_text_style(checks, f"{path}.text", clip.text)
        if checks.check(clip.duration_seconds > 0, f"{path}.duration_seconds", "is required for text clips"):
            check_fades(checks, path, clip, clip.duration_seconds)
            return clip.duration_seconds
        return None
    checks.check(bool(clip.asset_id), f"{path}.asset_id", "is required")
    if not ramp_ok:
        return None
    if clip.source_end_seconds > clip.source_start_seconds and math.isfinite(speed) and speed > 0:
        trim = clip.source_end_seconds - clip.source_start_seconds
        length = ramp.time_for(trim) if ramp is not None else trim / constant_speed(clip)
        check_fades(checks, path, clip, length)
        return length
    if clip.duration_seconds > 0:  # an image, a ramp given its length, or a source only known after probing
        return clip.duration_seconds
    return None


def _check_ramp(checks: Checks, path: str, clip: tl.Clip, kind: int, limits: Limits) -> bool:
    """Speed keyframes: rates in [MIN_RATE, MAX_RATE], times >= 0 and strictly increasing."""
    kfs = clip.filters.speed_keyframes
    if not kfs:
        return True
    base = f"{path}.filters.speed_keyframes"
    ok = checks.check(kind != tl.TRACK_KIND_TEXT, base, "text clips have no speed")
    ok = checks.check(not clip.HasField("speed"), f"{path}.speed", "set either speed or filters.speed_keyframes") and ok
    if not checks.keyframes(base, len(kfs), limits):
        return False  # one violation, not one per keyframe
    last = -1.0
    for ki, kf in enumerate(kfs):
        kpath = f"{base}[{ki}]"
        ok = checks.check(
            math.isfinite(kf.value) and MIN_RATE <= kf.value <= MAX_RATE, f"{kpath}.value", f"must be in [{MIN_RATE:g}, {MAX_RATE:g}]"
        ) and ok
        if checks.seconds(f"{kpath}.time_seconds", kf.time_seconds) and checks.check(kf.time_seconds >= 0, f"{kpath}.time_seconds", "must not be negative"):
            ok = checks.check(kf.time_seconds > last, f"{kpath}.time_seconds", "keyframes must be in increasing time order") and ok
            last = kf.time_seconds
        else:
            ok = False
        ok = checks.check(kf.easing in EASINGS, f"{kpath}.easing", "unknown easing") and ok
    return ok


def ramp_of(f: tl.ClipFilters) -> SpeedRamp | None:
    """The validated ramp; None for no keyframes or a single one (a constant rate)."""
    if len(f.speed_keyframes) < 2:
        return None
    return SpeedRamp(tuple(P.Keyframe(k.time_seconds, k.value, EASINGS[k.easing]) for k in f.speed_keyframes))


def constant_speed(clip: tl.Clip) -> float:
    if len(clip.filters.speed_keyframes) == 1:
        return float(clip.filters.speed_keyframes[0].value)
    return clip.speed if clip.HasField("speed") else 1.0


def check_fades(checks: Checks, path: str, clip: tl.Clip, length: float) -> None:
    checks.check(
        clip.fade_in_seconds + clip.fade_out_seconds <= length + 1e-9,
        f"{path}.fade_out_seconds",
        f"fade in + fade out are longer than the clip ({length:g} s)",
    )


def _check_transform(checks: Checks, path: str, t: tl.Transform, kind: int, limits: Limits) -> None:
    specs = (("x", -10.0, 10.0), ("y", -10.0, 10.0), ("scale", 0.0, 20.0), ("rotation_degrees", -36000.0, 36000.0), ("opacity", 0.0, 1.0))
    for name, lo, hi in specs:
        if not t.HasField(name):
            continue
        value: tl.AnimatedValue = getattr(t, name)
        vpath = f"{path}.{name}"
        checks.check(math.isfinite(value.value) and lo <= value.value <= hi, f"{vpath}.value", f"must be in [{lo:g}, {hi:g}]")
        last = -1.0
        if not checks.keyframes(f"{vpath}.keyframes", len(value.keyframes), limits):
            continue
        for ki, kf in enumerate(value.keyframes):
            kpath = f"{vpath}.keyframes[{ki}]"
            checks.check(math.isfinite(kf.value) and lo <= kf.value <= hi, f"{kpath}.value", f"must be in [{lo:g}, {hi:g}]")
            if checks.seconds(f"{kpath}.time_seconds", kf.time_seconds) and checks.check(kf.time_seconds >= 0, f"{kpath}.time_seconds", "must not be negative"):
                checks.check(kf.time_seconds > last, f"{kpath}.time_seconds", "keyframes must be in increasing time order")
                last = kf.time_seconds
        if kind == tl.TRACK_KIND_TEXT and name == "rotation_degrees":
            checks.check(not value.keyframes and value.value == 0, vpath, "text clips can't be rotated")


def _check_filters(checks: Checks, path: str, f: tl.ClipFilters) -> None:
    checks.check(math.isfinite(f.brightness) and -1 <= f.brightness <= 1, f"{path}.brightness", "must be in [-1, 1]")
    if f.HasField("contrast"):
        checks.check(math.isfinite(f.contrast) and 0 <= f.contrast <= 4, f"{path}.contrast", "must be in [0, 4]")
    if f.HasField("saturation"):
        checks.check(math.isfinite(f.saturation) and 0 <= f.saturation <= 3, f"{path}.saturation", "must be in [0, 3]")
    checks.check(math.isfinite(f.blur_sigma) and 0 <= f.blur_sigma <= 100, f"{path}.blur_sigma", "must be in [0, 100]")
