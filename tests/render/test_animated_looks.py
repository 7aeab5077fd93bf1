"""Animatable looks (issue 18): a keyframed grade strength (LUT intensity), exposure, temperature
and vignette, all evaluated per frame inside the one ffmpeg graph; checked on rendered frames."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.kit.cube_lut import parse_cube
from services.render.pipeline import render_frame
from services.render.timeline.expr import evaluate
from services.render.timeline.plan import Animated, Keyframe
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import jpeg_rgb
from tests.render.test_engine import render
from tests.render.test_looks import RED_TO_BLUE, violations
from tests.render.test_transitions import all_frames
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

FPS = 10.0


def ramp(*points: tuple[float, float], easing: int = tl.EASING_LINEAR) -> list[tl.Keyframe]:
    return [tl.Keyframe(time_seconds=t, value=v, easing=easing) for t, v in points]


async def test_keyframed_lut_intensity_fades_the_look_in_frame_by_frame(render_media, render_limits, tmp_path) -> None:
    """A red clip through a red-to-blue LUT at intensity 0 -> 1 over 2 s: each frame is the mix the
    curve gives at its time (the blue share follows the keyframes), and RenderFrame agrees."""
    t = timeline(fps=FPS)
    intensity = tl.AnimatedValue(keyframes=ramp((0.0, 0.0), (2.0, 1.0)))
    track(t).clips.add(asset_id="red", source_end_seconds=2, filters=tl.ClipFilters(lut_asset_id="swap", look_intensity=intensity))
    plan = plan_timeline(t, render_media.sources(), render_limits, luts={"swap": parse_cube(RED_TO_BLUE)})
    out = await render(plan, tmp_path / "r")
    frames = all_frames(out.video, 160, 90).astype(float)
    assert len(frames) == 20
    curve = Animated(0.0, (Keyframe(0.0, 0.0), Keyframe(2.0, 1.0)))
    for n, frame in enumerate(frames):
        r, _, b = frame[30:60, 50:110].reshape(-1, 3).mean(axis=0)
        k = evaluate(curve, n / FPS)
        # Red (255, 0, 0) mixed with blue (0, 0, 255) at k, within the encoder's noise.
        assert abs(b - 255 * k) < 14 and abs(r - 255 * (1 - k)) < 14, (n, k, r, b)
    jpeg, _, _ = await render_frame(plan, 0.5, tmp_path / "frame")
    still = jpeg_rgb(jpeg)[30:60, 50:110].reshape(-1, 3).mean(axis=0)
    assert abs(still[2] - frames[5][30:60, 50:110, 2].mean()) < 8, (still, frames[5].mean(axis=(0, 1)))


async def test_constant_intensity_mixes_and_zero_leaves_the_picture(render_media, render_limits, tmp_path) -> None:
    luts = {"swap": parse_cube(RED_TO_BLUE)}
    t = timeline(fps=FPS)
    v = track(t)
    for i, k in enumerate((0.0, 0.25, 1.0)):
        f = tl.ClipFilters(lut_asset_id="swap", look_intensity=tl.AnimatedValue(value=k))
        v.clips.add(asset_id="red", start_seconds=i, source_end_seconds=1, filters=f)
    frames = all_frames((await render(plan_timeline(t, render_media.sources(), render_limits, luts=luts), tmp_path)).video, 160, 90)
    for i, k in enumerate((0.0, 0.25, 1.0)):
        r, _, b = frames[i * 10 + 5][30:60, 50:110].reshape(-1, 3).astype(float).mean(axis=0)
        assert abs(b - 255 * k) < 14 and abs(r - 255 * (1 - k)) < 14, (k, r, b)


async def test_keyframed_exposure_temperature_and_vignette_follow_their_curves(render_media, render_limits, tmp_path) -> None:
    """Each keyframed value renders, at a frame, what the same value set as a constant renders."""
    src = render_media.sources()
    animated = timeline(fps=FPS)
    f = tl.ClipFilters(exposure_keyframes=ramp((0.0, -2.0), (2.0, 1.0)),
                       temperature_keyframes=ramp((0.0, 2000.0), (2.0, 12000.0), easing=tl.EASING_EASE_IN),
                       vignette_keyframes=ramp((0.5, 0.0), (1.5, 1.0)))
    track(animated).clips.add(asset_id="bars", source_start_seconds=1.0, source_end_seconds=3.0, filters=f)
    frames = all_frames((await render(plan_timeline(animated, src, render_limits), tmp_path / "a")).video, 160, 90).astype(float)
    assert len(frames) == 20
    means = frames[:, 35:55, 70:90].mean(axis=(1, 2))  # the centre, where the vignette leaves the picture
    for at in (0.2, 1.0, 1.8):
        n = round(at * FPS)
        constant = timeline(fps=FPS)
        fixed = tl.ClipFilters(exposure=evaluate(Animated(0, tuple(Keyframe(k.time_seconds, k.value) for k in f.exposure_keyframes)), at),
                               temperature_kelvin=evaluate(Animated(0, tuple(Keyframe(k.time_seconds, k.value, "ease_in") for k in f.temperature_keyframes)), at),
                               vignette=evaluate(Animated(0, tuple(Keyframe(k.time_seconds, k.value) for k in f.vignette_keyframes)), at))
        track(constant).clips.add(asset_id="bars", source_start_seconds=1.0, source_end_seconds=3.0, filters=fixed)
        ref = all_frames((await render(plan_timeline(constant, src, render_limits), tmp_path / f"c{n}")).video, 160, 90).astype(float)
        diff = np.abs(frames[n] - ref[n]).mean()
        assert diff < 4, (at, diff)
    # Brighter over time (exposure -2 -> +1 stops).
    assert means[0].sum() + 60 < means[10].sum() < means[19].sum(), means
    corner = lambda img: img[0:12, 0:20].mean()  # noqa: E731
    assert corner(frames[4]) > corner(frames[16]) + 10  # the vignette closes in after 0.5 s


async def test_an_animated_look_on_a_still_changes_over_time(render_media, render_limits, tmp_path) -> None:
    t = timeline(fps=FPS)
    f = tl.ClipFilters(exposure_keyframes=ramp((0.0, -3.0), (1.0, 0.0)))
    track(t).clips.add(asset_id="green", duration_seconds=1, filters=f)
    frames = all_frames((await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path)).video, 160, 90).astype(float)
    g = frames[:, 45, 80, 1]
    assert g[0] < 60 and g[9] > 200 and all(a <= b + 3 for a, b in itertools.pairwise(g)), g


def test_animated_look_fields_are_validated_with_paths(render_media, render_limits) -> None:
    c0 = "tracks[0].clips[0].filters"
    got = violations(render_media, render_limits, tl.ClipFilters(
        exposure=1, exposure_keyframes=ramp((0, 0), (1, 4)),
        temperature_keyframes=ramp((1, 3000), (0.5, 4000)),
        vignette_keyframes=[tl.Keyframe(time_seconds=-1, value=0.5, easing=9)],
        look_intensity=tl.AnimatedValue(value=2, keyframes=ramp((0, 0), (1, 1.5)))))
    assert {g.split(":")[0] for g in got} == {
        f"{c0}.exposure", f"{c0}.exposure_keyframes[1].value", f"{c0}.temperature_keyframes[1].time_seconds",
        f"{c0}.vignette_keyframes[0].time_seconds", f"{c0}.vignette_keyframes[0].easing",
        f"{c0}.look_intensity.value", f"{c0}.look_intensity.keyframes[1].value"}, got
    got = violations(render_media, render_limits, tl.ClipFilters(look_intensity=tl.AnimatedValue(value=0.5)), kind=tl.TRACK_KIND_TEXT)
    assert {g.split(":")[0] for g in got} == {c0}  # looks are for video tracks
    many = tl.ClipFilters(exposure_keyframes=ramp(*((i * 0.01, 0.0) for i in range(render_limits.max_keyframes + 1))))
    assert {g.split(":")[0] for g in violations(render_media, render_limits, many)} == {f"{c0}.exposure_keyframes"}


@pytest.mark.parametrize("field", ["exposure_keyframes", "temperature_keyframes", "vignette_keyframes"])
def test_keyframed_looks_plan_into_curves(render_media, render_limits, field) -> None:
    value = {"exposure_keyframes": 1.0, "temperature_keyframes": 5000.0, "vignette_keyframes": 0.5}[field]
    t = timeline()
    track(t).clips.add(asset_id="red", source_end_seconds=1, filters=tl.ClipFilters(**{field: ramp((0, value), (1, value / 2))}))
    f = plan_timeline(t, render_media.sources(), render_limits).tracks[0].clips[0].filters
    curve = getattr(f, field.replace("_keyframes", "_curve"))
    assert f.animated_looks and curve.keyframes[1].value == value / 2
