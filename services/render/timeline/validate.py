"""Timeline validation before any work (diffusers-style ``check_inputs``), then planning.

``check_structure`` needs nothing but the message (run it before resolving assets);
``plan_timeline`` also checks every clip against its probed source and returns the
frame-quantised :class:`Plan`. Both raise ``ServiceError`` INVALID_ARGUMENT with ``BadRequest``
field paths relative to the timeline, e.g. ``tracks[1].clips[3].source_end_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from services.kit.cube_lut import CubeLut
from services.kit.errors import ServiceError, Violations
from services.render.capabilities import Capabilities, capabilities
from services.render.media import MediaKind
from services.render.timeline import plan as P
from services.render.timeline.audiofx import check_audio, plan_ducking
from services.render.timeline.looks import (
    check_looks,
    check_mix,
    check_transition,
    plan_looks,
    plan_loudness,
    plan_transition,
)
from services.render.timeline.ramp import MAX_RATE, MIN_RATE, SpeedRamp
from services.render.timeline.style import font_file, parse_color, valid_color
from services.render.timeline.text import check_text_style, plan_text
from viarte.render.v1 import timeline_pb2 as tl

__all__ = [
    "Limits",
    "OutputOverrides",
    "asset_ids",
    "check_structure",
    "font_file",
    "parse_color",
    "plan_timeline",
]

_T = TypeVar("_T")
# Trims may run past the probed duration by this much (container vs stream rounding).
_SOURCE_SLACK = 0.05
_DEFAULT_FPS = 30.0
# Any time in a timeline (a clip's start, trims, fades, keyframes, transitions): far past the
# longest render, small enough that seconds * fps stays a float and rounds to an int.
MAX_SECONDS = 86400.0
_CLIP_TIMES = ("start_seconds", "source_start_seconds", "source_end_seconds", "duration_seconds", "fade_in_seconds", "fade_out_seconds")

_EASINGS = {
    tl.EASING_UNSPECIFIED: "linear",
    tl.EASING_LINEAR: "linear",
    tl.EASING_EASE_IN: "ease_in",
    tl.EASING_EASE_OUT: "ease_out",
    tl.EASING_EASE_IN_OUT: "ease_in_out",
}
_FITS = {
    tl.FIT_UNSPECIFIED: P.Fit.CONTAIN,
    tl.FIT_CONTAIN: P.Fit.CONTAIN,
    tl.FIT_COVER: P.Fit.COVER,
    tl.FIT_STRETCH: P.Fit.STRETCH,
}
_TRACK_KINDS = {tl.TRACK_KIND_VIDEO: P.TrackKind.VIDEO, tl.TRACK_KIND_TEXT: P.TrackKind.TEXT, tl.TRACK_KIND_AUDIO: P.TrackKind.AUDIO}


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


@dataclass(frozen=True)
class OutputOverrides:
    """Output size and rate; 0 = the canvas's."""

    width: int = 0
    height: int = 0
    fps: float = 0.0


class _Checks:
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


def asset_ids(timeline: tl.Timeline) -> list[str]:
    """Distinct asset ids the timeline references, in order of appearance."""
    seen: dict[str, None] = {}
    for track in timeline.tracks:
        for clip in track.clips:
            if clip.asset_id and track.kind in (tl.TRACK_KIND_VIDEO, tl.TRACK_KIND_AUDIO):
                seen.setdefault(clip.asset_id, None)
    return list(seen)


def check_structure(timeline: tl.Timeline, limits: Limits, output: OutputOverrides = OutputOverrides()) -> None:
    """Everything that can be checked without probing sources."""
    checks = _Checks()
    _check_canvas(checks, timeline, limits, output)
    for ti, track in enumerate(timeline.tracks):
        _check_track(checks, ti, track, limits)
    check_mix(checks, timeline, limits.caps)
    check_audio(checks, timeline)
    checks.raise_if_any()


def plan_timeline(
    timeline: tl.Timeline,
    sources: Mapping[str, P.Source],
    limits: Limits,
    output: OutputOverrides = OutputOverrides(),
    luts: Mapping[str, CubeLut | str] | None = None,
) -> P.Plan:
    """Validates the timeline against its sources and returns the plan (raises ServiceError).
    ``luts``: the parsed LUT of each ``filters.lut_asset_id`` (or why it is not one)."""
    check_structure(timeline, limits, output)
    checks = _Checks()
    fps = output.fps or timeline.canvas.fps or _DEFAULT_FPS
    width = output.width or timeline.canvas.width
    height = output.height or timeline.canvas.height
    pixel_scale = width / timeline.canvas.width
    tracks: list[P.PlannedTrack] = []
    for ti, track in enumerate(timeline.tracks):
        tracks.append(_plan_track(checks, ti, track, sources, fps, pixel_scale, limits, luts or {}))
    checks.raise_if_any()
    end = max((c.end for t in tracks for c in t.clips), default=0)
    frames = round(timeline.canvas.duration_seconds * fps) if timeline.canvas.duration_seconds > 0 else end
    checks.check(frames > 0, "canvas.duration_seconds", "the timeline is empty: add a clip or set a duration")
    checks.check(
        frames / fps <= limits.max_duration_seconds + 1e-9,
        "canvas.duration_seconds",
        f"the timeline lasts {frames / fps:.3f} s; the limit is {limits.max_duration_seconds:g} s",
        "TIMELINE_TOO_LONG",
    )
    checks.raise_if_any()
    canvas = P.PlannedCanvas(width, height, fps, parse_color(timeline.canvas.background_color or "#000000"), frames, pixel_scale)
    planned = tuple(_clip_to_canvas(t, frames) for t in tracks)
    plan = P.Plan(canvas, planned)
    return _replace_plan(plan, loudness=plan_loudness(timeline), ducking=plan_ducking(timeline)) if plan.has_audio else plan


# -- structure --------------------------------------------------------------------------------


def _check_canvas(checks: _Checks, timeline: tl.Timeline, limits: Limits, output: OutputOverrides) -> None:
    c = timeline.canvas
    checks.check(timeline.HasField("canvas"), "canvas", "is required")
    for name, value, limit in (("width", c.width, limits.max_width), ("height", c.height, limits.max_height)):
        if checks.check(value > 0, f"canvas.{name}", "must be positive"):
            checks.check(value % 2 == 0, f"canvas.{name}", "must be even (4:2:0 video)")
            checks.check(value <= limit, f"canvas.{name}", f"must be at most {limit}", "CANVAS_TOO_LARGE")
    if checks.check(math.isfinite(c.fps), "canvas.fps", "must be a finite number"):
        checks.check(0 <= c.fps <= limits.max_fps, "canvas.fps", f"must be in (0, {limits.max_fps:g}]", "CANVAS_TOO_LARGE")
    if checks.check(math.isfinite(c.duration_seconds), "canvas.duration_seconds", "must be a finite number"):
        checks.check(c.duration_seconds >= 0, "canvas.duration_seconds", "must not be negative")
        checks.check(
            c.duration_seconds <= limits.max_duration_seconds,
            "canvas.duration_seconds",
            f"must be at most {limits.max_duration_seconds:g} s",
            "TIMELINE_TOO_LONG",
        )
    checks.check(valid_color(c.background_color, empty_ok=True), "canvas.background_color", "must be #rrggbb")
    for name, value, limit in (("output_width", output.width, limits.max_width), ("output_height", output.height, limits.max_height)):
        checks.check(value >= 0 and value % 2 == 0, name, "must be a positive even number or 0")
        checks.check(value <= limit, name, f"must be at most {limit}", "CANVAS_TOO_LARGE")
    checks.check(0 <= output.fps <= limits.max_fps, "output_fps", f"must be in [0, {limits.max_fps:g}]", "CANVAS_TOO_LARGE")
    checks.check(len(timeline.tracks) <= limits.max_tracks, "tracks", f"at most {limits.max_tracks} tracks")
    total = sum(len(t.clips) for t in timeline.tracks)
    checks.check(total <= limits.max_clips, "tracks", f"at most {limits.max_clips} clips in all")


def _check_track(checks: _Checks, ti: int, track: tl.Track, limits: Limits) -> None:
    path = f"tracks[{ti}]"
    if not checks.check(track.kind in _TRACK_KINDS, f"{path}.kind", "must be VIDEO, TEXT or AUDIO"):
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


def _check_clip(checks: _Checks, path: str, kind: int, clip: tl.Clip, first: bool, limits: Limits) -> float | None:
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
    ramp = _ramp(clip.filters) if ramp_ok else None
    if clip.HasField("volume"):
        checks.check(math.isfinite(clip.volume) and 0 <= clip.volume <= 10, f"{path}.volume", "must be in [0, 10]")
    checks.check(clip.fade_in_seconds >= 0, f"{path}.fade_in_seconds", "must not be negative")
    checks.check(clip.fade_out_seconds >= 0, f"{path}.fade_out_seconds", "must not be negative")
    _check_transform(checks, f"{path}.transform", clip.transform, kind, limits)
    _check_filters(checks, f"{path}.filters", clip.filters)
    check_looks(checks, f"{path}.filters", clip.filters, kind, limits.caps)
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
            _check_fades(checks, path, clip, clip.duration_seconds)
            return clip.duration_seconds
        return None
    checks.check(bool(clip.asset_id), f"{path}.asset_id", "is required")
    if not ramp_ok:
        return None
    if clip.source_end_seconds > clip.source_start_seconds and math.isfinite(speed) and speed > 0:
        trim = clip.source_end_seconds - clip.source_start_seconds
        length = ramp.time_for(trim) if ramp is not None else trim / _constant_speed(clip)
        _check_fades(checks, path, clip, length)
        return length
    if clip.duration_seconds > 0:  # an image, a ramp given its length, or a source only known after probing
        return clip.duration_seconds
    return None


def _check_ramp(checks: _Checks, path: str, clip: tl.Clip, kind: int, limits: Limits) -> bool:
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
        ok = checks.check(kf.easing in _EASINGS, f"{kpath}.easing", "unknown easing") and ok
    return ok


def _ramp(f: tl.ClipFilters) -> SpeedRamp | None:
    """The validated ramp; None for no keyframes or a single one (a constant rate)."""
    if len(f.speed_keyframes) < 2:
        return None
    return SpeedRamp(tuple(P.Keyframe(k.time_seconds, k.value, _EASINGS[k.easing]) for k in f.speed_keyframes))


def _constant_speed(clip: tl.Clip) -> float:
    if len(clip.filters.speed_keyframes) == 1:
        return float(clip.filters.speed_keyframes[0].value)
    return clip.speed if clip.HasField("speed") else 1.0


def _check_fades(checks: _Checks, path: str, clip: tl.Clip, length: float) -> None:
    checks.check(
        clip.fade_in_seconds + clip.fade_out_seconds <= length + 1e-9,
        f"{path}.fade_out_seconds",
        f"fade in + fade out are longer than the clip ({length:g} s)",
    )


def _check_transform(checks: _Checks, path: str, t: tl.Transform, kind: int, limits: Limits) -> None:
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


def _check_filters(checks: _Checks, path: str, f: tl.ClipFilters) -> None:
    checks.check(math.isfinite(f.brightness) and -1 <= f.brightness <= 1, f"{path}.brightness", "must be in [-1, 1]")
    if f.HasField("contrast"):
        checks.check(math.isfinite(f.contrast) and 0 <= f.contrast <= 4, f"{path}.contrast", "must be in [0, 4]")
    if f.HasField("saturation"):
        checks.check(math.isfinite(f.saturation) and 0 <= f.saturation <= 3, f"{path}.saturation", "must be in [0, 3]")
    checks.check(math.isfinite(f.blur_sigma) and 0 <= f.blur_sigma <= 100, f"{path}.blur_sigma", "must be in [0, 100]")


# -- planning against sources -------------------------------------------------------------------


def _plan_track(
    checks: _Checks,
    ti: int,
    track: tl.Track,
    sources: Mapping[str, P.Source],
    fps: float,
    pixel_scale: float,
    limits: Limits,
    luts: Mapping[str, CubeLut | str],
) -> P.PlannedTrack:
    kind = _TRACK_KINDS[track.kind]
    gain = 0.0 if track.muted else (track.volume if track.HasField("volume") else 1.0)
    clips: list[P.PlannedClip] = []
    for ci, clip in enumerate(track.clips):
        path = f"tracks[{ti}].clips[{ci}]"
        planned = _plan_clip(checks, path, ti, ci, kind, clip, sources, fps, pixel_scale, gain, limits, luts)
        if planned is None:
            continue
        if clips:
            # Again on the frame grid: a clip that plays to its source's end has a length only
            # now, so overlaps the structural pass could not see are caught here.
            planned = _check_neighbours(checks, path, clips[-1], planned, clip, fps)
        clips.append(planned)
    return P.PlannedTrack(ti, kind, track.hidden, tuple(clips))


def _check_neighbours(
    checks: _Checks, path: str, prev: P.PlannedClip, planned: P.PlannedClip, clip: tl.Clip, fps: float
) -> P.PlannedClip:
    other = f"tracks[{prev.track_index}].clips[{prev.clip_index}]"
    if planned.transition_in is None:
        checks.check(planned.start >= prev.end, f"{path}.start_seconds", f"overlaps {other} (ends at {prev.end / fps:g} s) without a transition")
        return planned
    # The quantised overlap is the transition: xfade offsets stay on the frame grid.
    frames = prev.end - planned.start
    expected = round(clip.transition_in.duration_seconds * fps)
    field = f"{path}.transition_in.duration_seconds"
    ok = checks.check(frames > 0 and abs(frames - expected) <= 1, field, f"the clip must start {clip.transition_in.duration_seconds:g} s before {other} ends ({prev.end / fps:g} s)")
    prev_in = prev.transition_in.frames if prev.transition_in else 0
    ok = checks.check(frames <= planned.frames and frames + prev_in <= prev.frames, field, "the transition is longer than one of its clips") and ok
    return _replace(planned, transition_in=_replace_plan(planned.transition_in, frames=frames)) if ok else planned


def _plan_clip(
    checks: _Checks,
    path: str,
    ti: int,
    ci: int,
    kind: P.TrackKind,
    clip: tl.Clip,
    sources: Mapping[str, P.Source],
    fps: float,
    pixel_scale: float,
    gain: float,
    limits: Limits,
    luts: Mapping[str, CubeLut | str],
) -> P.PlannedClip | None:
    speed = _constant_speed(clip)
    ramp = _ramp(clip.filters)
    volume = gain * (clip.volume if clip.HasField("volume") else 1.0)
    start = round(clip.start_seconds * fps)
    common = {
        "track_index": ti,
        "clip_index": ci,
        "fit": _FITS.get(clip.fit, P.Fit.CONTAIN),
        "transform": _transform(clip.transform),
        "filters": plan_looks(checks, f"{path}.filters", clip.filters, _filters(clip.filters, pixel_scale), luts),
        "fade_in": clip.fade_in_seconds,
        "fade_out": clip.fade_out_seconds,
        "transition_in": _transition(clip),
    }
    if kind is P.TrackKind.TEXT:
        end = start + round(clip.duration_seconds * fps)
        if not checks.check(end > start, f"{path}.duration_seconds", "shorter than one frame"):
            return None
        text = plan_text(checks, path + ".text", clip.text, pixel_scale, limits.default_font_family)
        return P.PlannedClip(kind=P.ClipKind.TEXT, start=start, end=end, text=text, volume=0.0, **common)  # type: ignore[arg-type]
    source = sources.get(clip.asset_id)
    if source is None:
        raise ServiceError.not_found("ASSET_NOT_FOUND", f"asset {clip.asset_id} not found", metadata={"asset_id": clip.asset_id, "field": f"{path}.asset_id"})
    info = source.info
    if kind is P.TrackKind.AUDIO:
        if not checks.check(info.has_audio, f"{path}.asset_id", "has no audio stream"):
            return None
        clip_kind = P.ClipKind.AUDIO
    elif info.kind is MediaKind.AUDIO:
        checks.check(False, f"{path}.asset_id", "is an audio asset: put it on an audio track")
        return None
    else:
        clip_kind = P.ClipKind.IMAGE if info.kind is MediaKind.IMAGE else P.ClipKind.VIDEO
    if clip_kind is P.ClipKind.IMAGE:
        if not checks.check(clip.duration_seconds > 0, f"{path}.duration_seconds", "is required for image clips"):
            return None
        end = start + round(clip.duration_seconds * fps)
        _check_fades(checks, path, clip, clip.duration_seconds)
        checks.check(not clip.filters.speed_keyframes, f"{path}.filters.speed_keyframes", "images have no speed")
        src_start, src_end = 0.0, 0.0
    else:
        span = _plan_trim(checks, path, clip, info.duration, speed, ramp)
        if span is None:
            return None
        src_start, src_end, length = span
        end = start + round(length * fps)
        _check_fades(checks, path, clip, length)
    if not checks.check(end > start, f"{path}.source_end_seconds", "the clip is shorter than one frame"):
        return None
    return P.PlannedClip(
        kind=clip_kind,
        start=start,
        end=end,
        source=source,
        source_start=src_start,
        source_end=src_end,
        speed=speed,
        ramp=ramp if clip_kind is not P.ClipKind.IMAGE else None,
        volume=volume if info.has_audio else 0.0,
        audio_eq=clip.filters.audio_eq,
        **common,  # type: ignore[arg-type]
    )


def _plan_trim(
    checks: _Checks, path: str, clip: tl.Clip, duration: float, speed: float, ramp: SpeedRamp | None
) -> tuple[float, float, float] | None:
    """(source start, source end, timeline length) of a video/audio clip, inside its source."""
    src_start = clip.source_start_seconds
    beyond = f"is beyond the source's duration ({duration:.3f} s)"
    ok = checks.check(src_start < duration, f"{path}.source_start_seconds", beyond)
    if ramp is not None and not clip.source_end_seconds and clip.duration_seconds > 0 and ok:
        # The length is given: the ramp decides how much source it plays, which must exist.
        length = clip.duration_seconds
        used = ramp.source_at(length)
        if not checks.check(
            src_start + used <= duration + _SOURCE_SLACK,
            f"{path}.filters.speed_keyframes[{ramp.keyframe_at(ramp.time_for(duration - src_start))}].value",
            f"the ramp plays {used:.3f} s of source from {src_start:g} s in {length:g} s; the source lasts {duration:.3f} s",
        ):
            return None
        return src_start, min(src_start + used, duration), length
    src_end = clip.source_end_seconds or duration
    ok = checks.check(src_end <= duration + _SOURCE_SLACK, f"{path}.source_end_seconds", beyond) and ok
    if not ok or src_end <= src_start:
        return None
    src_end = min(src_end, duration)
    length = ramp.time_for(src_end - src_start) if ramp is not None else (src_end - src_start) / speed
    return src_start, src_end, length


def _clip_to_canvas(track: P.PlannedTrack, frames: int) -> P.PlannedTrack:
    """Drops what a set canvas duration cuts off (a transition into a dropped clip goes with it)."""
    kept: list[P.PlannedClip] = []
    for clip in track.clips:
        if clip.start >= frames:
            break
        if clip.transition_in is not None and kept and kept[-1].end - clip.start != clip.transition_in.frames:
            break  # the canvas ends inside this transition: the previous clip plays to the end
        kept.append(_replace(clip, end=min(clip.end, frames)) if clip.end > frames else clip)
    return P.PlannedTrack(track.index, track.kind, track.hidden, tuple(kept))


def _transition(clip: tl.Clip) -> P.Transition | None:
    t = clip.transition_in
    if not clip.HasField("transition_in") or t.duration_seconds <= 0:
        return None
    return plan_transition(t)


def _animated(value: tl.AnimatedValue, default: float, present: bool) -> P.Animated:
    if not present:
        return P.Animated(default)
    kfs = tuple(P.Keyframe(k.time_seconds, k.value, _EASINGS.get(k.easing, "linear")) for k in value.keyframes)
    return P.Animated(value.value if not kfs else kfs[0].value, kfs)


def _transform(t: tl.Transform) -> P.Transform:
    return P.Transform(
        x=_animated(t.x, 0.5, t.HasField("x")),
        y=_animated(t.y, 0.5, t.HasField("y")),
        scale=_animated(t.scale, 1.0, t.HasField("scale")),
        rotation=_animated(t.rotation_degrees, 0.0, t.HasField("rotation_degrees")),
        opacity=_animated(t.opacity, 1.0, t.HasField("opacity")),
    )


def _filters(f: tl.ClipFilters, pixel_scale: float) -> P.ClipFilters:
    return P.ClipFilters(
        brightness=f.brightness,
        contrast=f.contrast if f.HasField("contrast") else 1.0,
        saturation=f.saturation if f.HasField("saturation") else 1.0,
        blur_sigma=f.blur_sigma * pixel_scale,
        grayscale=f.grayscale,
    )


def _replace(clip: P.PlannedClip, **changes: object) -> P.PlannedClip:
    return replace(clip, **changes)  # type: ignore[arg-type]


def _replace_plan(obj: _T, **changes: object) -> _T:
    return replace(obj, **changes)  # type: ignore[type-var]
