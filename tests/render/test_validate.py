"""Timeline validation: every refusal names the offending field before any work is done."""

from __future__ import annotations

import grpc
import pytest

from services.kit.errors import ServiceError
from services.render.timeline.validate import Limits, OutputOverrides, check_structure, plan_timeline
from tests.render.timelines import crossfade, timeline, track
from viarte.render.v1 import timeline_pb2 as tl


def refused(t: tl.Timeline, media: object, limits: Limits, **kw: object) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        plan_timeline(t, media.sources(), limits, **kw)  # type: ignore[attr-defined]
    return info.value


def fields(err: ServiceError) -> set[str]:
    return {v.field for v in err.field_violations}


def test_valid_timeline_plans_frame_exact(render_media, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_start_seconds=0.5, source_end_seconds=2.0)
    v.clips.add(asset_id="blue", start_seconds=1.0, source_end_seconds=1.0, transition_in=crossfade(0.5))
    plan = plan_timeline(t, render_media.sources(), render_limits)
    assert plan.canvas.frames == 60
    a, b = plan.tracks[0].clips
    assert (a.start, a.end, b.start, b.end) == (0, 45, 30, 60)
    assert b.transition_in is not None and b.transition_in.frames == 15
    assert plan.has_audio  # the red clip has a tone


def test_overlap_without_transition(render_media, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=2)
    v.clips.add(asset_id="blue", start_seconds=1.5, source_end_seconds=1)
    err = refused(t, render_media, render_limits)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_TIMELINE"
    assert fields(err) == {"tracks[0].clips[1].start_seconds"}


def test_negative_and_inverted_times(render_media, render_limits) -> None:
    t = timeline()
    track(t, tl.TRACK_KIND_AUDIO)  # an empty track is fine
    v = track(t)
    v.clips.add(asset_id="red", start_seconds=-1, source_end_seconds=1)
    v.clips.add(asset_id="red", start_seconds=2, source_start_seconds=2, source_end_seconds=1)
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[1].clips[0].start_seconds", "tracks[1].clips[1].source_end_seconds"}


def test_trim_beyond_probed_source(render_media, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=1)
    v.clips.add(asset_id="red", start_seconds=1, source_start_seconds=1, source_end_seconds=7.5)
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[0].clips[1].source_end_seconds"}
    assert "3.0" in err.field_violations[0].description


def test_transition_longer_than_clip(render_media, render_limits) -> None:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red", source_end_seconds=0.5)
    v.clips.add(asset_id="blue", start_seconds=-0.5, source_end_seconds=2, transition_in=crossfade(1.0))
    err = refused(t, render_media, render_limits)
    assert "tracks[0].clips[1].transition_in.duration_seconds" in fields(err)


def test_canvas_over_limits_and_too_long(render_media) -> None:
    limits = Limits(max_width=320, max_height=180, max_duration_seconds=2)
    big = timeline(width=640, height=90)
    track(big).clips.add(asset_id="red", source_end_seconds=1)
    err = refused(big, render_media, limits)
    assert err.reason == "CANVAS_TOO_LARGE" and fields(err) == {"canvas.width"}
    long = timeline()
    track(long).clips.add(asset_id="red", source_end_seconds=3)
    err = refused(long, render_media, limits)
    assert err.reason == "TIMELINE_TOO_LONG" and fields(err) == {"canvas.duration_seconds"}
    with pytest.raises(ServiceError) as info:
        check_structure(timeline(), limits, OutputOverrides(width=1000))
    assert info.value.reason == "CANVAS_TOO_LARGE"


def test_unknown_asset_is_not_found(render_media, render_limits) -> None:
    t = timeline()
    track(t).clips.add(asset_id="nope", source_end_seconds=1)
    err = refused(t, render_media, render_limits)
    assert err.code is grpc.StatusCode.NOT_FOUND and err.reason == "ASSET_NOT_FOUND"


def test_text_rules_are_checked_before_sources(render_media, render_limits) -> None:
    t = timeline()
    track(t).clips.add(asset_id="nope", source_end_seconds=1)  # would be NOT_FOUND, but structure comes first
    txt = track(t, tl.TRACK_KIND_TEXT)
    txt.clips.add(duration_seconds=1, text=tl.TextStyle(text=""))
    rotated = txt.clips.add(start_seconds=1, duration_seconds=1, text=tl.TextStyle(text="x"))
    rotated.transform.rotation_degrees.value = 10
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[1].clips[0].text.text", "tracks[1].clips[1].transform.rotation_degrees"}


def test_kind_mismatches_against_sources(render_media, render_limits) -> None:
    t = timeline()
    track(t).clips.add(asset_id="tone", source_end_seconds=1)
    track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id="blue", source_end_seconds=1)
    track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=tl.TextStyle(text="x", font_family="No Such Font 42"))
    track(t).clips.add(asset_id="green")  # an image needs a duration
    err = refused(t, render_media, render_limits)
    assert fields(err) == {
        "tracks[0].clips[0].asset_id",
        "tracks[1].clips[0].asset_id",
        "tracks[2].clips[0].text.font_family",
        "tracks[3].clips[0].duration_seconds",
    }


def test_keyframes_must_increase(render_media, render_limits) -> None:
    t = timeline()
    c = track(t).clips.add(asset_id="red", source_end_seconds=1)
    c.transform.x.keyframes.add(time_seconds=0.5, value=0.1)
    c.transform.x.keyframes.add(time_seconds=0.2, value=0.9)
    c.transform.opacity.value = 2
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[0].clips[0].transform.x.keyframes[1].time_seconds", "tracks[0].clips[0].transform.opacity.value"}


def test_overlap_of_a_clip_that_plays_to_its_source_end(render_media, render_limits) -> None:
    # source_end 0 = the source's end: its length (3 s) is known only after probing
    t = timeline()
    v = track(t)
    v.clips.add(asset_id="red")
    v.clips.add(asset_id="blue", start_seconds=2, source_end_seconds=1)
    err = refused(t, render_media, render_limits)
    assert fields(err) == {"tracks[0].clips[1].start_seconds"}
    t.tracks[0].clips[1].transition_in.CopyFrom(crossfade(1.0))
    plan = plan_timeline(t, render_media.sources(), render_limits)
    assert plan.tracks[0].clips[1].transition_in.frames == 30 and plan.canvas.frames == 90
