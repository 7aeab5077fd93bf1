"""Every xfade transition the installed ffmpeg lists, by name, and eased transitions (issue 18)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from services.kit.errors import ServiceError
from services.render.capabilities import capabilities
from services.render.encoder import Quality, encoder_options
from services.render.pipeline import render_frame, render_plan
from services.render.timeline.validate import check_structure, plan_timeline
from tests.fixtures.render import frame_rgb, jpeg_rgb, probe_file
from tests.render.test_engine import render
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

CLIP, XF, FPS = 0.8, 0.4, 10.0


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def all_frames(path: object, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def block_diff(a: np.ndarray, b: np.ndarray, k: int = 4) -> float:
    """Mean difference of k x k block averages: pixel-level dither (dissolve, pixelize edges) is
    where JPEG and x264 noise is largest; the blocks still show which transition ran and where."""
    h, w = a.shape[0] // k * k, a.shape[1] // k * k

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].astype(float).reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))

    return float(np.abs(blocks(a) - blocks(b)).mean())


async def test_every_listed_transition_renders_and_matches_render_frame(render_media, render_limits, tmp_path) -> None:
    names = capabilities("ffmpeg").transitions
    assert len(names) >= 40
    # One timeline, one graph: clips alternate a test pattern and solid blue, each joined to the
    # previous one by the next transition (64x36 at 10 fps keeps 46 transitions quick).
    t = timeline(width=64, height=36, fps=FPS)
    v = track(t)
    v.clips.add(asset_id="bars", source_end_seconds=CLIP)
    for i, name in enumerate(names, 1):
        v.clips.add(
            asset_id="blue" if i % 2 else "bars", start_seconds=i * (CLIP - XF), source_end_seconds=CLIP,
            transition_in=tl.Transition(name=name, duration_seconds=XF),
        )
    plan = plan_timeline(t, render_media.sources(), render_limits)
    assert [c.transition_in.kind for c in plan.tracks[0].clips[1:]] == list(names)
    # High quality: the comparison is about the graph, not the encoder's noise on 64x36 frames.
    out = await render_plan(plan, tmp_path / "all", encoder_options("libx264", Quality.HIGH))
    frames = round((len(names) * (CLIP - XF) + CLIP) * FPS)
    video = all_frames(out.video, 64, 36)
    assert len(video) == frames
    worst = 0.0
    for i, name in enumerate(names, 1):
        start = i * (CLIP - XF)
        mid = start + XF / 2  # 2 of the transition's 4 frames in: progress 0.5
        rendered = video[round(mid * FPS)]
        jpeg, _, _ = await render_frame(plan, mid, tmp_path / "frame")
        still = jpeg_rgb(jpeg)
        diff = block_diff(still, rendered)
        worst = max(worst, diff)
        # JPEG (RenderFrame) vs CRF 18 noise on 64x36 frames of a moving test pattern: up to ~6;
        # and it is this frame, not a neighbour (those differ by 30+ mid-transition).
        assert diff < 8, (name, diff)
        neighbours = min(block_diff(still, video[round(mid * FPS) + k]) for k in (-1, 1))
        assert diff < neighbours / 2 or neighbours < 4, (name, diff, neighbours)  # (zoomin into solid blue: all alike)
        before, after = video[round(start * FPS) - 1], video[round((start + XF) * FPS)]
        # The transition did something at its midpoint: neither the outgoing nor the incoming picture.
        assert mean_diff(rendered, before) > 2 and mean_diff(rendered, after) > 2, name
    print(f"{len(names)} transitions; worst render vs RenderFrame mean difference {worst:.2f}")


@pytest.mark.parametrize(("easing", "red_share"), [(tl.EASING_LINEAR, 0.5), (tl.EASING_EASE_IN, 0.75), (tl.EASING_EASE_OUT, 0.25), (tl.EASING_EASE_IN_OUT, 0.5)])
async def test_easing_shapes_the_transition_progress(render_media, render_limits, tmp_path, easing, red_share) -> None:
    t = timeline(fps=FPS)
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1.0)
    v.clips.add(asset_id="blue", start_seconds=0.6, source_end_seconds=1.0,
                transition_in=tl.Transition(kind=tl.TRANSITION_KIND_CROSSFADE, duration_seconds=0.4, easing=easing))
    plan = plan_timeline(t, render_media.sources(), render_limits)
    out = await render(plan, tmp_path)
    assert probe_file(out.video)["frames"] == 16  # easing adds and drops no frame
    # Frame 1 of the 4-frame transition (linear progress 0.25): ease-in has barely moved.
    quarter = {tl.EASING_LINEAR: 0.75, tl.EASING_EASE_IN: 1 - 0.25**2, tl.EASING_EASE_OUT: 1 - 0.25 * 1.75, tl.EASING_EASE_IN_OUT: 1 - 2 * 0.25**2}
    for at, share in ((0.8, red_share), (0.7, quarter[easing])):
        px = frame_rgb(out.video, at)[45, 80].astype(int)
        assert abs(px[0] - 255 * share) < 25 and abs(px[2] - 255 * (1 - share)) < 25, (at, px, share)
        jpeg, _, _ = await render_frame(plan, at, tmp_path / "frame")
        assert mean_diff(jpeg_rgb(jpeg), frame_rgb(out.video, at)) < 6
    assert frame_rgb(out.video, 1.0)[45, 80, 2] > 200 and frame_rgb(out.video, 0.5)[45, 80, 0] > 200


def test_unknown_transition_names_are_refused_with_their_path(render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1)
    v.clips.add(asset_id="red", start_seconds=0.5, source_end_seconds=1, transition_in=tl.Transition(name="warp9", duration_seconds=0.5))
    v.clips.add(asset_id="red", start_seconds=1.0, source_end_seconds=1, transition_in=tl.Transition(
        kind=tl.TRANSITION_KIND_WIPE_LEFT, name="circleopen", duration_seconds=0.5, easing=9))
    with pytest.raises(ServiceError) as info:
        check_structure(t, render_limits)
    fields = [v.field for v in info.value.field_violations]
    assert fields == ["tracks[0].clips[1].transition_in.name", "tracks[0].clips[2].transition_in.name",
                      "tracks[0].clips[2].transition_in.easing"], fields
    assert "warp9" in info.value.field_violations[0].description
