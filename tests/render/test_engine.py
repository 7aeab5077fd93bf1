"""The timeline engine end to end: plan → one ffmpeg graph → MP4, checked with ffprobe and pixels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from services.render.encoder import Quality, encoder_options
from services.render.ffmpeg_process import FFmpegCancelled, FFmpegProgress
from services.render.pipeline import RenderOutput, render_frame, render_plan, scratch_dir
from services.render.timeline.expr import evaluate
from services.render.timeline.plan import Plan
from services.render.timeline.validate import OutputOverrides, plan_timeline
from tests.fixtures.render import BT601, colour_tags, frame_rgb, jpeg_rgb, probe_file
from tests.render.timelines import crossfade, timeline, track
from viarte.render.v1 import timeline_pb2 as tl

X264 = encoder_options("libx264", Quality.DRAFT)
RED, BLUE, GREEN = np.array([255, 0, 0]), np.array([0, 0, 255]), np.array([0, 255, 0])


def close(pixel: np.ndarray, colour: np.ndarray, tol: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= tol)


async def render(plan: Plan, tmp_path: Path, **kw: object) -> RenderOutput:
    return await render_plan(plan, tmp_path, X264, **kw)  # type: ignore[arg-type]


def centre(img: np.ndarray) -> np.ndarray:
    return img[img.shape[0] // 2, img.shape[1] // 2]


async def test_cuts_gaps_and_ffprobe_facts(render_media, render_limits, tmp_path) -> None:
    t = timeline(background="#ffffff")
    v = track(t)
    v.clips.add(asset_id="red", source_start_seconds=0.5, source_end_seconds=1.5)
    # 1..2 s: a gap in the background colour; 2..3 s: a 64x64 image, letterboxed
    v.clips.add(asset_id="green", start_seconds=2, duration_seconds=1)
    plan = plan_timeline(t, render_media.sources(), render_limits)
    seen: list[FFmpegProgress] = []
    out = await render(plan, tmp_path, on_progress=seen.append)
    facts = probe_file(out.video)
    assert abs(facts["video_duration"] - 3.0) <= 1 / 30 + 1e-6
    assert (facts["width"], facts["height"], facts["fps"], facts["frames"]) == (160, 90, 30.0, 90)
    assert facts["codec"] == "h264" and facts["has_audio"] and facts["audio_codec"] == "aac"
    assert out.poster.read_bytes()[:2] == b"\xff\xd8"
    # Tagged BT.601 like the playback segments: an untagged file is decoded as BT.709 by browsers.
    assert colour_tags(out.video) == BT601
    assert seen and seen[-1].done and seen[-1].frame == 90 and seen[-1].total_frames == 90
    assert close(centre(frame_rgb(out.video, 0.5)), RED)
    assert close(centre(frame_rgb(out.video, 1.5)), np.array([255, 255, 255]))
    last = frame_rgb(out.video, 2.5)
    assert close(centre(last), GREEN) and close(last[45, 10], np.array([255, 255, 255]))


async def test_red_clip_at_one_second_and_crossfade_midpoint(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=2)
    v.clips.add(asset_id="blue", start_seconds=1.5, source_end_seconds=1.5, transition_in=crossfade(0.5))
    plan = plan_timeline(t, render_media.sources(), render_limits)
    out = await render(plan, tmp_path)
    assert probe_file(out.video)["frames"] == 90
    assert close(centre(frame_rgb(out.video, 1.0)), RED)
    mid = centre(frame_rgb(out.video, 1.75)).astype(int)
    assert 90 < mid[0] < 170 and 90 < mid[2] < 170 and mid[1] < 40  # half red, half blue
    assert close(centre(frame_rgb(out.video, 2.5)), BLUE)


async def test_wipe_splits_the_frame(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1.5)
    v.clips.add(asset_id="blue", start_seconds=0.5, source_end_seconds=1.5, transition_in=crossfade(1.0, tl.TRANSITION_KIND_WIPE_LEFT))
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path)
    mid = frame_rgb(out.video, 1.0)
    left, right = mid[45, 20], mid[45, 140]
    assert {tuple(np.round(left / 255)), tuple(np.round(right / 255))} == {(1, 0, 0), (0, 0, 1)}


async def test_text_changes_pixels_only_where_expected(render_media, render_limits, tmp_path) -> None:
    def build(with_text: bool) -> Plan:
        t = timeline()
        track(t).clips.add(asset_id="blue", source_end_seconds=2)
        if with_text:
            c = track(t, tl.TRACK_KIND_TEXT).clips.add(
                start_seconds=0.5, duration_seconds=1, text=tl.TextStyle(text="Hi", font_size=20, color="#ffff00")
            )
            c.transform.x.value, c.transform.y.value = 0.25, 0.25
        return plan_timeline(t, render_media.sources(), render_limits)

    plain = await render(build(False), tmp_path / "a")
    text = await render(build(True), tmp_path / "b")
    for at, expect_text in ((0.2, False), (1.0, True), (1.8, False)):
        diff = np.abs(frame_rgb(text.video, at).astype(int) - frame_rgb(plain.video, at).astype(int)).max(axis=2) > 60
        if not expect_text:
            assert not diff.any(), at
            continue
        ys, xs = np.nonzero(diff)
        assert diff.sum() > 30
        # Centred on (0.25, 0.25) of 160x90: inside the top-left quadrant only.
        assert xs.max() < 80 and ys.max() < 45 and abs(xs.mean() - 40) < 8 and abs(ys.mean() - 22.5) < 6


async def test_overlay_follows_keyframes_with_opacity(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    track(t).clips.add(asset_id="blue", source_end_seconds=2)
    clip = track(t).clips.add(asset_id="red", source_end_seconds=2, fit=tl.FIT_STRETCH)
    clip.transform.scale.value = 0.25
    clip.transform.x.keyframes.add(time_seconds=0.0, value=0.2)
    clip.transform.x.keyframes.add(time_seconds=2.0, value=0.8, easing=tl.EASING_EASE_IN_OUT)
    clip.transform.opacity.value = 0.5
    plan = plan_timeline(t, render_media.sources(), render_limits)
    out = await render(plan, tmp_path)
    x_curve = plan.tracks[1].clips[0].transform.x
    for at in (0.5, 1.0, 1.5):
        img = frame_rgb(out.video, at).astype(int)
        mask = img[..., 0] > 80  # red shows through at half opacity
        xs = np.nonzero(mask)[1]
        assert abs(xs.mean() - 160 * evaluate(x_curve, at)) < 2.5, at
        inside = img[45, round(xs.mean())]
        assert 90 < inside[0] < 170 and 90 < inside[2] < 170  # 50 % red over blue


async def test_keyframed_opacity_and_scale(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    track(t).clips.add(asset_id="blue", source_end_seconds=2)
    clip = track(t).clips.add(asset_id="red", source_end_seconds=2, fit=tl.FIT_STRETCH)
    clip.transform.opacity.keyframes.add(time_seconds=0, value=0)
    clip.transform.opacity.keyframes.add(time_seconds=2, value=1)
    clip.transform.scale.keyframes.add(time_seconds=0, value=0.2)
    clip.transform.scale.keyframes.add(time_seconds=2, value=0.6)
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path)
    img = frame_rgb(out.video, 1.0).astype(int)
    assert 90 < img[45, 80, 0] < 170  # opacity 0.5 at t=1
    reddish = np.nonzero(img[45, :, 0] > 60)[0]
    assert abs(len(reddish) - 160 * 0.4) <= 4  # scale 0.4 at t=1


async def test_filters_speed_and_output_overrides(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    c = track(t).clips.add(asset_id="red", source_end_seconds=3, speed=2.0)
    c.filters.grayscale = True
    c.filters.brightness = 0.1
    plan = plan_timeline(t, render_media.sources(), render_limits, OutputOverrides(width=320, height=180, fps=15))
    out = await render(plan, tmp_path)
    facts = probe_file(out.video)
    # 3 s at 2x = 1.5 s = 22.5 frames at 15 fps: the plan rounds to the frame grid.
    assert plan.canvas.frames == 22
    assert (facts["width"], facts["height"], facts["fps"], facts["frames"]) == (320, 180, 15.0, 22)
    assert abs(facts["video_duration"] - 22 / 15) <= 1 / 15 + 1e-6 and facts["has_audio"]
    px = centre(frame_rgb(out.video, 0.7)).astype(int)
    assert px.max() - px.min() < 12 and 60 < px.mean() < 200  # grey, not red


async def test_audio_only_when_audible(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    track(t).clips.add(asset_id="blue", source_end_seconds=1)
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path / "silent")
    assert not probe_file(out.video)["has_audio"]
    music = track(t, tl.TRACK_KIND_AUDIO)
    music.clips.add(asset_id="tone", start_seconds=0.5, source_end_seconds=1.5, fade_in_seconds=0.2, fade_out_seconds=0.3)
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path / "music")
    facts = probe_file(out.video)
    assert facts["has_audio"] and abs(facts["video_duration"] - 2.0) <= 1 / 30 + 1e-6


async def test_render_frame_matches_the_render(render_media, render_limits, tmp_path) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="bars", source_end_seconds=2)
    v.clips.add(asset_id="red", start_seconds=1.5, source_end_seconds=1.0, transition_in=crossfade(0.5))
    pip = track(t).clips.add(asset_id="blue", start_seconds=0.5, source_end_seconds=1.5, fade_in_seconds=0.5)
    pip.transform.scale.value, pip.transform.x.value = 0.3, 0.7
    track(t, tl.TRACK_KIND_TEXT).clips.add(start_seconds=0.2, duration_seconds=2, text=tl.TextStyle(text="T", font_size=30))
    plan = plan_timeline(t, render_media.sources(), render_limits)
    out = await render(plan, tmp_path / "full")
    for at in (0.1, 0.8, 1.7, 2.4):
        jpeg, w, h = await render_frame(plan, at, tmp_path / "frame")
        assert (w, h) == (160, 90)
        diff = np.abs(jpeg_rgb(jpeg).astype(int) - frame_rgb(out.video, at).astype(int)).mean()
        assert diff < 8, at  # codec noise on a busy test pattern at 160x90
    small, w, h = await render_frame(plan, 1.0, tmp_path / "frame", max_width=80)
    assert (w, h) == (80, 44) and jpeg_rgb(small).shape == (44, 80, 3)


async def test_cancel_kills_ffmpeg_and_leaves_nothing(render_media, render_limits, tmp_path) -> None:
    t = timeline(width=640, height=360, duration=20)
    for start in range(0, 20, 3):
        c = track(t).clips.add(asset_id="bars", start_seconds=start, source_end_seconds=3)
        c.filters.blur_sigma = 8
    plan = plan_timeline(t, render_media.sources(), render_limits)
    cancel = asyncio.Event()
    seen: list[FFmpegProgress] = []

    def progress(p: FFmpegProgress) -> None:
        seen.append(p)
        cancel.set()

    with scratch_dir(tmp_path) as work:
        with pytest.raises(FFmpegCancelled):
            await asyncio.wait_for(render(plan, work, on_progress=progress, cancel=cancel), 30)
        assert seen and seen[-1].frame < plan.canvas.frames
        assert list(work.iterdir()) == []
    assert list(tmp_path.iterdir()) == []
