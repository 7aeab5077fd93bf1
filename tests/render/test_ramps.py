"""Speed ramps: keyframed playback rate compiled into the same single ffmpeg graph.

The source is a "clock": its luma encodes its own timestamp (Y = 16 + 50 t), so every output frame
says which source instant it shows. Expectations integrate the speed curve numerically (trapezoids
over the keyframe curve), independently of the closed-form integrals the engine uses.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit.errors import ServiceError
from services.render.encoder import Quality, encoder_options
from services.render.media import probe
from services.render.pipeline import render_frame, render_plan
from services.render.timeline.expr import evaluate
from services.render.timeline.plan import Animated, Keyframe, Source
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import frame_rgb, jpeg_rgb, probe_file
from tests.render.timelines import crossfade, timeline, track
from viarte.render.v1 import timeline_pb2 as tl

X264 = encoder_options("libx264", Quality.DRAFT)
CLOCK_SECONDS = 4.0
_EASE = {tl.EASING_UNSPECIFIED: "linear", tl.EASING_LINEAR: "linear", tl.EASING_EASE_IN: "ease_in", tl.EASING_EASE_OUT: "ease_out", tl.EASING_EASE_IN_OUT: "ease_in_out"}


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory, render_media) -> dict[str, Source]:
    path = tmp_path_factory.mktemp("ramp-media") / "clock.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=black:s=160x90:r=30:d={CLOCK_SECONDS},format=gray,geq=lum='16+50*T',format=yuv420p",
         "-f", "lavfi", "-i", f"sine=f=440:d={CLOCK_SECONDS}", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return render_media.sources() | {"clock": Source(str(path), probe(str(path), "video/mp4"), "video/mp4")}


def source_time(path: Path | str, t: float, fps: float = 30.0) -> float:
    """Which clock instant the output shows at time ``t`` (decoded luma of that frame)."""
    n = round(t * fps)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=True,
    ).stdout
    return (float(np.frombuffer(raw, np.uint8).mean()) - 16) / 50


def integrated(kfs: list[tl.Keyframe], until: float) -> float:
    """Source seconds played in ``until`` output seconds, by trapezoids over the speed curve."""
    ts = np.linspace(0, until, 4001)
    speeds = np.array([speed(kfs, float(t)) for t in ts])
    return float(np.trapezoid(speeds, ts))


def length_for(kfs: list[tl.Keyframe], source: float) -> float:
    lo, hi = 0.0, source / 0.1
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if integrated(kfs, mid) < source else (lo, mid)
    return (lo + hi) / 2


RAMP = [
    tl.Keyframe(time_seconds=0.0, value=0.5),
    tl.Keyframe(time_seconds=1.2, value=3.0, easing=tl.EASING_EASE_IN_OUT),
    tl.Keyframe(time_seconds=1.6, value=1.0, easing=tl.EASING_EASE_OUT),
]


def speed(kfs: list[tl.Keyframe], t: float) -> float:
    return evaluate(Animated(kfs[0].value, tuple(Keyframe(k.time_seconds, k.value, _EASE[k.easing]) for k in kfs)), t)


def tolerance(kfs: list[tl.Keyframe], t: float, fps: float = 30.0) -> float:
    """What frame quantisation allows: the output frame shows a source frame up to half an output
    frame (at the local rate) away, plus one source frame (30 fps), plus codec noise."""
    return 0.5 / fps * speed(kfs, t) * 1.2 + 1 / 30 + 0.01


def audio_windows(path: Path, seconds: float, window: float = 0.2) -> list[tuple[float, float]]:
    """(RMS, dominant frequency in Hz) of each ``window`` of the sound."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "8000", "-f", "s16le", "pipe:1"],
                         capture_output=True, check=True).stdout
    pcm = np.frombuffer(raw, np.int16).astype(float)
    n = int(8000 * window)
    out = []
    for i in range(0, int(8000 * seconds) - n + 1, n):
        chunk = pcm[i : i + n]
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(n)))
        out.append((float(np.sqrt(np.mean(chunk**2))), float(np.argmax(spectrum) * 8000 / n)))
    return out


async def test_ramped_clip_duration_and_content(clock, render_limits, tmp_path) -> None:
    t = timeline()
    c = track(t).clips.add(asset_id="clock", source_start_seconds=0.5, source_end_seconds=3.0)
    c.filters.speed_keyframes.extend(RAMP)
    plan = plan_timeline(t, clock, render_limits)
    expected = length_for(RAMP, 2.5)  # 2.5 s of source at the ramp's rates
    assert abs(plan.canvas.duration - expected) <= 1 / 30 + 1e-6
    out = await render_plan(plan, tmp_path, X264)
    facts = probe_file(out.video)
    assert facts["frames"] == plan.canvas.frames
    assert abs(facts["video_duration"] - expected) <= 1 / 30 + 1e-6 and facts["has_audio"]
    for at in (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.35, expected - 0.05):
        shown, want = source_time(out.video, at), 0.5 + integrated(RAMP, at)
        assert abs(shown - want) < tolerance(RAMP, at), (at, shown, want)
    # A constant 1x would show 0.5 + at: the ramp really changed what is shown.
    assert source_time(out.video, 0.4) < 0.5 + 0.4 - 0.08 and source_time(out.video, 1.35) > 0.5 + 1.35 + 0.5
    # Sound follows the ramp all the way: not muted, time-stretched with its pitch kept (440 Hz).
    windows = audio_windows(out.video, plan.canvas.duration)
    assert len(windows) >= 6 and all(rms > 1000 and abs(hz - 440) <= 10 for rms, hz in windows), windows


async def test_ramp_with_transitions_given_length_and_scrubbing(clock, render_limits, tmp_path) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1.0)
    # No source_end: the clip lasts duration_seconds and plays what the ramp consumes in that time.
    c = v.clips.add(asset_id="clock", start_seconds=0.5, source_start_seconds=0.2, duration_seconds=1.5, transition_in=crossfade(0.5))
    ramp = [tl.Keyframe(time_seconds=0.5, value=0.5), tl.Keyframe(time_seconds=1.5, value=2.0, easing=tl.EASING_EASE_OUT)]
    c.filters.speed_keyframes.extend(ramp)
    v.clips.add(asset_id="blue", start_seconds=1.7, source_end_seconds=0.6, transition_in=crossfade(0.3))
    plan = plan_timeline(t, clock, render_limits)
    ramped = plan.tracks[0].clips[1]
    assert abs(ramped.source_end - (0.2 + integrated(ramp, 1.5))) < 1e-3
    assert plan.canvas.frames == round(2.3 * 30)
    out = await render_plan(plan, tmp_path / "full", X264)
    facts = probe_file(out.video)
    assert facts["frames"] == plan.canvas.frames and abs(facts["video_duration"] - 2.3) <= 1 / 30 + 1e-6
    for at in (1.0, 1.2, 1.4):  # between the transitions: the clock alone
        local = at - 0.5
        assert abs(source_time(out.video, at) - (0.2 + integrated(ramp, local))) < tolerance(ramp, local), at
    # The scrubber compiles a window that starts inside the ramp: the seek integrates it too.
    for at in (1.1, 1.35):
        jpeg, _, _ = await render_frame(plan, at, tmp_path / "frame")
        gray = jpeg_rgb(jpeg).astype(float).mean()
        full = frame_rgb(out.video, at).astype(float).mean()
        assert abs(gray - full) < 6, at


def refused(t: tl.Timeline, sources: dict[str, Source], limits) -> set[str]:
    with pytest.raises(ServiceError) as info:
        plan_timeline(t, sources, limits)
    return {v.field for v in info.value.field_violations}


def test_invalid_ramps_are_refused_with_field_paths(clock, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="clock", source_end_seconds=1)
    bad = v.clips.add(asset_id="clock", start_seconds=2, source_end_seconds=2, speed=2.0)
    bad.filters.speed_keyframes.extend([
        tl.Keyframe(time_seconds=0, value=1), tl.Keyframe(time_seconds=1, value=40), tl.Keyframe(time_seconds=0.5, value=1),
    ])
    text = track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=tl.TextStyle(text="x"))
    text.filters.speed_keyframes.add(time_seconds=0, value=2)
    assert refused(t, clock, render_limits) == {
        "tracks[0].clips[1].speed",
        "tracks[0].clips[1].filters.speed_keyframes[1].value",
        "tracks[0].clips[1].filters.speed_keyframes[2].time_seconds",
        "tracks[1].clips[0].filters.speed_keyframes",
    }
    # A ramp whose given length consumes more than the source: the keyframe whose segment runs out.
    t = timeline()
    c = track(t).clips.add(asset_id="clock", source_start_seconds=1.0, duration_seconds=2.5)
    c.filters.speed_keyframes.extend([
        tl.Keyframe(time_seconds=0, value=0.5), tl.Keyframe(time_seconds=1, value=0.5), tl.Keyframe(time_seconds=2, value=3.0),
    ])
    # 0.5 s in the first second, then 1.75 s in the second: 3 s of clock run out inside segment 2.
    assert refused(t, clock, render_limits) == {"tracks[0].clips[0].filters.speed_keyframes[2].value"}
    # The same ramp over a trim is fine: the length follows the ramp.
    c.ClearField("duration_seconds")
    c.source_end_seconds = 3.0
    plan = plan_timeline(t, clock, render_limits)
    assert abs(plan.canvas.duration - length_for(list(c.filters.speed_keyframes), 2.0)) <= 1 / 30


_rates = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])
_easings = st.sampled_from([tl.EASING_LINEAR, tl.EASING_EASE_IN, tl.EASING_EASE_OUT, tl.EASING_EASE_IN_OUT])


@st.composite
def ramps(draw: st.DrawFn) -> list[tl.Keyframe]:
    times = sorted(draw(st.sets(st.sampled_from([0.0, 0.2, 0.4, 0.7, 1.0]), min_size=2, max_size=3)))
    return [tl.Keyframe(time_seconds=t, value=draw(_rates), easing=draw(_easings)) for t in times]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ramp=ramps(), trim=st.sampled_from([(0.0, 1.2), (0.5, 2.0), (2.2, 3.5)]), fade=st.booleans(), scaled=st.booleans())
def test_random_ramps_render_their_integrated_length(ramp, trim, fade, scaled, clock, render_limits, tmp_path_factory) -> None:
    t = timeline(width=64, height=36, fps=24)
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=0.5)
    c = v.clips.add(asset_id="clock", start_seconds=0.3, source_start_seconds=trim[0], source_end_seconds=trim[1],
                    transition_in=crossfade(0.2) if fade else None, fade_out_seconds=0.1)
    if not fade:
        c.start_seconds = 0.5
    c.filters.speed_keyframes.extend(ramp)
    if scaled:  # composed over a background (overlay paths) instead of being the base track
        c.transform.scale.value = 0.5
    plan = plan_timeline(t, clock, render_limits)
    expected = c.start_seconds + length_for(ramp, trim[1] - trim[0])
    assert abs(plan.canvas.duration - expected) <= 1.5 / 24 + 1e-6
    work = tmp_path_factory.mktemp("ramp-prop")
    out = asyncio.run(render_plan(plan, work, X264))
    facts = probe_file(out.video)
    assert facts["frames"] == plan.canvas.frames and facts["has_audio"]
    assert abs(facts["video_duration"] - plan.canvas.duration) <= 1 / 24 + 1e-6
