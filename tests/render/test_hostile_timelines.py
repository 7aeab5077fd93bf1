"""Hostile but well-formed timelines: huge or non-finite times, keyframe floods, and legal
timelines whose ffmpeg filter graph is longer than the kernel lets one argument be."""

from __future__ import annotations

import grpc
import pytest

from services.kit.errors import ServiceError
from services.render.pipeline import render_frame
from services.render.timeline.validate import Limits, plan_timeline
from tests.fixtures.render import jpeg_rgb
from tests.render.timelines import crossfade, timeline, track
from viarte.render.v1 import timeline_pb2 as tl

# Linux refuses one exec argument longer than 32 pages (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 32 * 4096


def refused(t: tl.Timeline, media: object, limits: Limits) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        plan_timeline(t, media.sources(), limits)  # type: ignore[attr-defined]
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT and info.value.reason == "INVALID_TIMELINE"
    return info.value


def fields(err: ServiceError) -> set[str]:
    return {v.field for v in err.field_violations}


@pytest.mark.parametrize("name", ["start_seconds", "duration_seconds"])
@pytest.mark.parametrize("value", [1e308, 1e12])
def test_huge_text_clip_times_are_refused(render_media, render_limits, name: str, value: float) -> None:
    t = timeline()
    clip = track(t, tl.TRACK_KIND_TEXT).clips.add(start_seconds=0, duration_seconds=1, text=tl.TextStyle(text="hi"))
    setattr(clip, name, value)
    assert f"tracks[0].clips[0].{name}" in fields(refused(t, render_media, render_limits))


def test_huge_times_anywhere_are_refused(render_media, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1)
    second = v.clips.add(asset_id="blue", start_seconds=0.5, source_end_seconds=1, transition_in=crossfade(1e308))
    second.transform.opacity.keyframes.add(time_seconds=1e300, value=1)
    ramp = track(t).clips.add(asset_id="red", duration_seconds=1)
    ramp.filters.speed_keyframes.add(time_seconds=0, value=1)
    ramp.filters.speed_keyframes.add(time_seconds=float("inf"), value=2)
    got = fields(refused(t, render_media, render_limits))
    assert {
        "tracks[0].clips[1].transition_in.duration_seconds",
        "tracks[0].clips[1].transform.opacity.keyframes[0].time_seconds",
        "tracks[1].clips[0].filters.speed_keyframes[1].time_seconds",
    } <= got


def test_keyframe_floods_are_refused_with_one_violation(render_media, render_limits) -> None:
    t = timeline()
    speedy = track(t).clips.add(asset_id="red", duration_seconds=1)
    for i in range(10_000):
        speedy.filters.speed_keyframes.add(time_seconds=i / 10_000, value=1)
    faded = track(t).clips.add(asset_id="blue", source_end_seconds=1)
    for i in range(10_000):
        faded.transform.opacity.keyframes.add(time_seconds=i / 10_000, value=0.5)
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[0].clips[0].filters.speed_keyframes", "tracks[1].clips[0].transform.opacity.keyframes"}
    assert all(f"at most {render_limits.max_keyframes}" in v.description for v in err.field_violations)


async def test_a_legal_graph_longer_than_one_exec_argument_renders(render_media, render_limits, tmp_path) -> None:
    """Six overlays with the most keyframes allowed on four properties: a valid timeline whose
    graph is over MAX_ARG_STRLEN; passed on the command line, exec fails with E2BIG."""
    t = timeline(duration=1)
    n = render_limits.max_keyframes
    for _ in range(6):
        clip = track(t).clips.add(asset_id="green", duration_seconds=1)
        for name in ("x", "y", "scale", "opacity"):
            for i in range(n):
                getattr(clip.transform, name).keyframes.add(time_seconds=i / n, value=0.5)
    plan = plan_timeline(t, render_media.sources(), render_limits)
    jpeg, w, h = await render_frame(plan, 0.5, tmp_path)
    assert (w, h) == (160, 90) and jpeg_rgb(jpeg).shape == (90, 160, 3)
    # The graph really was over the limit (the file ffmpeg read it from).
    assert max(p.stat().st_size for p in tmp_path.glob("graph-*.txt")) > MAX_ARG_STRLEN
