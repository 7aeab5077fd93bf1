"""RenderPlaybackSegment (issue 19): draft segments of the export's graph, cached by content, so that
an edit re-renders only the segments it overlaps; each one a fragmented MP4 with sound whose frames
match RenderFrame."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.render.playback import playback_window
from services.render.timeline.compile import Window
from services.render.timeline.plan import (
    ClipKind,
    Plan,
    PlannedCanvas,
    PlannedClip,
    PlannedTrack,
    TrackKind,
    Transition,
)
from tests.fixtures.render import jpeg_rgb, probe_file
from tests.render.test_service import upload_media
from tests.render.timelines import timeline, track
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl

asyncio_test = pytest.mark.asyncio(loop_scope="session")

# Mean absolute difference (0..255, RGB) between a draft frame and RenderFrame's JPEG of the same
# time: both are lossy (x264 CRF 26 vs JPEG q 3) and at 160x90 chroma is a few pixels wide, so
# edges differ by a few levels; a wrong frame (another clip, a shifted fade) differs by 50+.
FRAME_MATCH = 6.0


def six_seconds(ids: dict[str, str]) -> tl.Timeline:
    """Red (with its 440 Hz tone) 0-1.5 s, a still 1.5-6 s, a text over the still: three 2 s segments."""
    t = timeline()
    v = track(t)
    v.clips.add(asset_id=ids["red"], source_end_seconds=1.5)
    v.clips.add(asset_id=ids["green"], start_seconds=1.5, duration_seconds=4.5, fade_out_seconds=1.0)
    track(t, tl.TRACK_KIND_TEXT).clips.add(start_seconds=2.5, duration_seconds=3, text=tl.TextStyle(text="Play", font_size=18))
    return t


def frames_at(media: Path, times: list[float], width: int, height: int) -> list[np.ndarray]:
    out = []
    for at in times:
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(media), "-ss", f"{at:.4f}", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout
        out.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
    return out


@asyncio_test
async def test_segments_are_cached_and_an_edit_rerenders_only_what_it_overlaps(
    render_service, storage_service, user_factory, render_media, tmp_path
) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    drafts = render_service.server.render_drafts
    t = six_seconds(ids)

    async def segment(tline: tl.Timeline, at: float) -> render_pb2.RenderPlaybackSegmentResponse:
        request = render_pb2.RenderPlaybackSegmentRequest(timeline=tline, time_seconds=at)
        return await stub.RenderPlaybackSegment(request, metadata=user.metadata, timeout=120)

    first = [await segment(t, at) for at in (0.0, 2.0, 4.0)]
    assert [(s.start_seconds, s.duration_seconds) for s in first] == [(0.0, 2.0), (2.0, 2.0), (4.0, 2.0)]
    assert [s.cached for s in first] == [False, False, False]
    assert all(s.timeline_duration_seconds == 6.0 and s.mime_type.startswith("video/mp4") for s in first)
    assert (await segment(t, 3.9)).key == first[1].key  # any time inside a segment names that segment
    assert {s.key for s in first} <= drafts.keys()

    # Each is a fragmented MP4 with sound (silence where the timeline has none) and 2 s of frames.
    for i, s in enumerate(first):
        media = tmp_path / f"seg{i}.mp4"
        media.write_bytes(s.media)
        facts = probe_file(media)
        assert facts["has_audio"] and facts["frames"] == 60, facts
        assert b"moof" in s.media[:4096] or b"moof" in s.media  # fragments, as MSE appends them

    # The frames match RenderFrame of the same timeline at the same times (the same graph).
    media = tmp_path / "seg1.mp4"
    times = [2.1, 2.6, 3.0, 3.5, 3.9]
    drafted = frames_at(media, [x - 2.0 for x in times], first[1].width, first[1].height)
    diffs = []
    for at, frame in zip(times, drafted, strict=True):
        still = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=at), metadata=user.metadata)
        diffs.append(float(np.abs(jpeg_rgb(still.jpeg).astype(int) - frame.astype(int)).mean()))
    assert max(diffs) < FRAME_MATCH, diffs

    # Nothing changed: every segment comes from the cache.
    again = [await segment(t, at) for at in (0.0, 2.0, 4.0)]
    assert [s.cached for s in again] == [True, True, True]
    assert [s.key for s in again] == [s.key for s in first]

    # An edit to the red clip (0-1.5 s) re-renders only the first segment.
    before = drafts.keys()
    t.tracks[0].clips[0].filters.brightness = 0.2
    edited = [await segment(t, at) for at in (0.0, 2.0, 4.0)]
    assert [s.cached for s in edited] == [False, True, True]
    assert edited[0].key != first[0].key and [s.key for s in edited[1:]] == [s.key for s in first[1:]]
    assert drafts.keys() - before == {edited[0].key}
    # An edit to the text (2.5-5.5 s) touches the second and third.
    before = drafts.keys()
    t.tracks[1].clips[0].text.text = "Pause"
    edited = [await segment(t, at) for at in (0.0, 2.0, 4.0)]
    assert [s.cached for s in edited] == [True, False, False]
    assert drafts.keys() - before == {edited[1].key, edited[2].key}


@asyncio_test
async def test_playback_segment_refuses_times_outside_the_timeline(render_service, storage_service, user_factory, render_media) -> None:
    import grpc

    from viarte.errors import from_rpc_error

    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RenderPlaybackSegment(render_pb2.RenderPlaybackSegmentRequest(timeline=six_seconds(ids), time_seconds=6.0), metadata=user.metadata)
    err = from_rpc_error(info.value)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_TIMELINE"
    assert [f.field for f in err.field_violations] == ["time_seconds"]


def _plan(frames: int, clips: list[PlannedClip]) -> Plan:
    canvas = PlannedCanvas(width=160, height=90, fps=30.0, background="0x000000", frames=frames)
    return Plan(canvas=canvas, tracks=(PlannedTrack(0, TrackKind.VIDEO, False, tuple(clips)),))


def test_segment_windows_never_cut_a_transition() -> None:
    a = PlannedClip(0, 0, ClipKind.IMAGE, 0, 70)
    # A 1 s transition over 50..80: the 2 s cut at frame 60 moves back to 50.
    b = PlannedClip(0, 1, ClipKind.IMAGE, 50, 200, transition_in=Transition(kind="fade", frames=30))
    plan = _plan(200, [a, b])
    assert playback_window(plan, 0, 2.0) == Window(0, 50)
    assert playback_window(plan, 49, 2.0) == Window(0, 50)
    assert playback_window(plan, 55, 2.0) == Window(50, 120)
    assert playback_window(plan, 119, 2.0) == Window(50, 120)
    assert playback_window(plan, 199, 2.0) == Window(180, 200)
    # No transition: the plain grid.
    assert playback_window(_plan(200, [a]), 61, 2.0) == Window(60, 120)
