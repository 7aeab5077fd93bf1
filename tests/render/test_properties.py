"""Property tests: any timeline either renders with exactly the planned duration or is refused with
INVALID_ARGUMENT; nothing crashes and no scratch files stay behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit.errors import ServiceError
from services.render.encoder import Quality, encoder_options
from services.render.pipeline import render_frame, render_plan, scratch_dir
from services.render.timeline.plan import Keyframe
from services.render.timeline.ramp import MIN_RATE, SpeedRamp
from services.render.timeline.validate import Limits, plan_timeline
from tests.fixtures.render import jpeg_rgb, make_media, probe_file
from viarte.render.v1 import timeline_pb2 as tl

EASINGS = {tl.EASING_EASE_IN: "ease_in", tl.EASING_EASE_OUT: "ease_out", tl.EASING_EASE_IN_OUT: "ease_in_out"}
X264 = encoder_options("libx264", Quality.DRAFT)
LIMITS = Limits(max_width=320, max_height=180, max_duration_seconds=4)

times = st.floats(min_value=-0.3, max_value=2.5, allow_nan=False).map(lambda x: round(x, 2))
# Mostly plausible values, some broken ones: about half the timelines are valid.
small = st.sampled_from([0.3, 0.5, 0.8, 1.0, 1.2] * 2 + [0.0])


@st.composite
def animated(draw: st.DrawFn, lo: float, hi: float) -> tl.AnimatedValue:
    value = st.floats(min_value=lo, max_value=hi, allow_nan=False).map(lambda x: round(x, 2))
    if draw(st.booleans()):
        return tl.AnimatedValue(value=draw(value))
    return tl.AnimatedValue(keyframes=[
        tl.Keyframe(time_seconds=0, value=draw(value)),
        tl.Keyframe(time_seconds=draw(st.sampled_from([0.5, 1.0])), value=draw(value), easing=draw(st.sampled_from(list(tl.Easing.values())))),
    ])


@st.composite
def clip(draw: st.DrawFn, kind: int, start: float) -> tl.Clip:
    c = tl.Clip(start_seconds=start, fade_in_seconds=draw(st.sampled_from([0, 0, 0.2])), fade_out_seconds=draw(st.sampled_from([0, 0.3])))
    if kind == tl.TRACK_KIND_TEXT:
        c.text.text = draw(st.sampled_from(["", "x", "x", "x"]) | st.text(alphabet="ab %:'\\,=[]{}", min_size=1, max_size=8))
        c.duration_seconds = draw(small)
    else:
        c.asset_id = draw(st.sampled_from(["red", "blue", "bars", "green", "tone"] if kind == tl.TRACK_KIND_VIDEO else ["tone", "red", "blue"]))
        c.source_start_seconds = draw(st.sampled_from([0.0, 0.5, 0.5, 0.5, 0.5, 2.8]))
        c.source_end_seconds = c.source_start_seconds + draw(small)
        c.duration_seconds = draw(st.sampled_from([0.0, 0.7, 0.7]))
        if draw(st.booleans()):
            c.speed = draw(st.sampled_from([0.5, 1.5, 2.0, 2.0, 0.5, 1.5, 5.0]))
        if draw(st.sampled_from([False, False, True])):  # a speed ramp (rarely alongside speed: refused)
            if draw(st.sampled_from([True] * 12 + [False])):
                c.ClearField("speed")
            rate = st.sampled_from([0.5, 1.0, 2.0, 3.0] * 4 + [0.05])
            c.filters.speed_keyframes.extend([
                tl.Keyframe(time_seconds=draw(st.sampled_from([0.0, 0.2])), value=draw(rate)),
                tl.Keyframe(time_seconds=draw(st.sampled_from([0.3, 0.6] * 6 + [0.1])), value=draw(rate), easing=draw(st.sampled_from(list(tl.Easing.values())))),
            ])
    if draw(st.booleans()):
        c.fit = draw(st.sampled_from(list(tl.Fit.values())))
        c.transform.x.CopyFrom(draw(animated(0.0, 1.0)))
        c.transform.scale.CopyFrom(draw(animated(0.2, 1.5)))
        c.transform.opacity.CopyFrom(draw(animated(0.0, 1.0)))
        if kind == tl.TRACK_KIND_VIDEO:
            c.transform.rotation_degrees.CopyFrom(draw(animated(-90.0, 90.0)))
            c.filters.blur_sigma = draw(st.sampled_from([0.0, 2.0]))
            c.filters.grayscale = draw(st.booleans())
    return c


@st.composite
def timelines(draw: st.DrawFn) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(
        width=draw(st.sampled_from([64] * 5 + [96, 96, 63])), height=36, fps=draw(st.sampled_from([10.0, 15.0, 24.0])),
        background_color=draw(st.sampled_from(["", "#102030"] * 5 + ["red"])), duration_seconds=draw(st.sampled_from([0.0, 0.0, 1.5])),
    ))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([tl.TRACK_KIND_VIDEO, tl.TRACK_KIND_VIDEO, tl.TRACK_KIND_TEXT, tl.TRACK_KIND_AUDIO]))
        track = t.tracks.add(kind=kind, muted=draw(st.booleans()))
        cursor = 0.0
        for _ in range(draw(st.integers(1 if not t.tracks[:-1] else 0, 3))):
            sequential = draw(st.sampled_from([True] * 5 + [False]))
            start = round(max(cursor + draw(st.sampled_from([0.0] * 4 + [0.3, -0.2])), 0), 2) if sequential else draw(times)
            c = track.clips.add()
            c.CopyFrom(draw(clip(kind, start)))
            if kind == tl.TRACK_KIND_VIDEO and len(track.clips) > 1 and draw(st.booleans()):
                overlap = draw(st.sampled_from([0.2, 0.4]))
                c.start_seconds = round(cursor - overlap, 2)
                c.transition_in.CopyFrom(tl.Transition(kind=draw(st.sampled_from(list(tl.TransitionKind.values())[1:])), duration_seconds=overlap))
            length = c.duration_seconds or max(c.source_end_seconds - c.source_start_seconds, 0) / (c.speed or 1)
            kfs = c.filters.speed_keyframes
            if len(kfs) == 2 and kfs[0].time_seconds < kfs[1].time_seconds and min(kfs[0].value, kfs[1].value) >= MIN_RATE:
                ramp = SpeedRamp(tuple(Keyframe(k.time_seconds, k.value, EASINGS.get(k.easing, "linear")) for k in kfs))
                length = ramp.time_for(max(c.source_end_seconds - c.source_start_seconds, 0))
            cursor = c.start_seconds + length
    return t


_media: dict[str, object] = {}


def media(tmp: Path) -> dict[str, object]:
    if not _media:
        _media.update(make_media(tmp / "media").sources())
    return _media


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(t=timelines(), at=st.floats(min_value=0, max_value=1))
def test_random_timelines_render_exactly_or_are_refused(t: tl.Timeline, at: float, tmp_path_factory) -> None:
    root = tmp_path_factory.getbasetemp() / "render-properties"
    sources = media(root)
    work_root = root / "work"
    try:
        plan = plan_timeline(t, sources, LIMITS)  # type: ignore[arg-type]
    except ServiceError as err:
        assert err.code is grpc.StatusCode.INVALID_ARGUMENT and err.field_violations
        return

    async def run() -> None:
        with scratch_dir(work_root) as work:
            out = await render_plan(plan, work, X264)
            facts = probe_file(out.video)
            assert facts["frames"] == plan.canvas.frames
            assert abs(facts["video_duration"] - plan.canvas.duration) <= 1 / plan.canvas.fps + 1e-6
            assert (facts["width"], facts["height"]) == (plan.canvas.width, plan.canvas.height)
            assert facts["has_audio"] == plan.has_audio
            jpeg, w, h = await render_frame(plan, at * plan.canvas.duration, work)
            assert jpeg_rgb(jpeg).shape == (h, w, 3)

    asyncio.run(run())
    assert list(work_root.iterdir()) == []


def test_a_fade_out_longer_than_the_clips_whole_frames_fades_the_whole_clip(tmp_path_factory) -> None:
    """0.3 s of source at 15 fps is 4 frames (0.267 s): the checks allow a 0.3 s fade-out, and
    ffmpeg refused the negative fade start the graph gave it (found by the property above)."""
    t = tl.Timeline(
        canvas=tl.Canvas(width=64, height=36, fps=15),
        tracks=[tl.Track(kind=tl.TRACK_KIND_VIDEO, clips=[tl.Clip(asset_id="red", source_end_seconds=0.3, fade_out_seconds=0.3)])],
    )
    root = tmp_path_factory.getbasetemp() / "render-properties"
    plan = plan_timeline(t, media(root), LIMITS)  # type: ignore[arg-type]

    async def run() -> None:
        with scratch_dir(root / "work-fade") as work:
            out = await render_plan(plan, work, X264)
            assert probe_file(out.video)["frames"] == plan.canvas.frames

    asyncio.run(run())
