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
from services.kit.errors import ServiceError
from services.render.media import MediaKind
from services.render.timeline import plan as P
from services.render.timeline.audiofx import check_audio, plan_ducking
from services.render.timeline.checks import (
    EASINGS,
    TRACK_KINDS,
    Checks,
    Limits,
    check_fades,
    check_track,
    constant_speed,
    ramp_of,
)
from services.render.timeline.looks import (
    check_mix,
    plan_looks,
    plan_loudness,
    plan_transition,
)
from services.render.timeline.ramp import SpeedRamp
from services.render.timeline.style import font_file, parse_color, valid_color
from services.render.timeline.text import plan_text
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
_FITS = {
    tl.FIT_UNSPECIFIED: P.Fit.CONTAIN,
    tl.FIT_CONTAIN: P.Fit.CONTAIN,
    tl.FIT_COVER: P.Fit.COVER,
    tl.FIT_STRETCH: P.Fit.STRETCH,
}


@dataclass(frozen=True)
class OutputOverrides:
    """Output size and rate; 0 = the canvas's."""

    width: int = 0
    height: int = 0
    fps: float = 0.0


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
    checks = Checks()
    _check_canvas(checks, timeline, limits, output)
    for ti, track in enumerate(timeline.tracks):
        check_track(checks, ti, track, limits)
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
    checks = Checks()
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


def _check_canvas(checks: Checks, timeline: tl.Timeline, limits: Limits, output: OutputOverrides) -> None:
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


# -- planning against sources -------------------------------------------------------------------


def _plan_track(
    checks: Checks,
    ti: int,
    track: tl.Track,
    sources: Mapping[str, P.Source],
    fps: float,
    pixel_scale: float,
    limits: Limits,
    luts: Mapping[str, CubeLut | str],
) -> P.PlannedTrack:
    kind = TRACK_KINDS[track.kind]
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
    checks: Checks, path: str, prev: P.PlannedClip, planned: P.PlannedClip, clip: tl.Clip, fps: float
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
    checks: Checks,
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
    speed = constant_speed(clip)
    ramp = ramp_of(clip.filters)
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
        check_fades(checks, path, clip, clip.duration_seconds)
        checks.check(not clip.filters.speed_keyframes, f"{path}.filters.speed_keyframes", "images have no speed")
        src_start, src_end = 0.0, 0.0
    else:
        span = _plan_trim(checks, path, clip, info.duration, speed, ramp)
        if span is None:
            return None
        src_start, src_end, length = span
        end = start + round(length * fps)
        check_fades(checks, path, clip, length)
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
    checks: Checks, path: str, clip: tl.Clip, duration: float, speed: float, ramp: SpeedRamp | None
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
    kfs = tuple(P.Keyframe(k.time_seconds, k.value, EASINGS.get(k.easing, "linear")) for k in value.keyframes)
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
