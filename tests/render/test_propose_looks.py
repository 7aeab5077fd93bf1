"""ProposeEdit's options over the real services (issue 18): transitions chosen from the shots
(a slide that follows a pan, a dissolve between look-alike shots, a hard cut otherwise) and a
LUT colour match between shots, checked on the proposal and on frames the service renders."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.inference.assistant.actions import parse_action
from services.render.timeline.validate import check_structure
from tests.render.test_analyze import BEAT, BEAT_START, CLICKS, FRAME, _ffmpeg, _stub, _upload
from viarte.inference.v1 import assistant_pb2
from viarte.render.v1 import render_pb2
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.type.v1 import asset_pb2

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(900)]

_S = "s=320x180:r=30"
CLIPS = {
    # The camera pans right over a wide picture: the picture moves left at ~0.3 widths/s.
    "pan": "smptehdbars=s=960x180:r=30:d=3,crop=w=320:h=180:x='t*100':y=0",
    "warm1": f"color=c=orange:{_S}:d=3,drawbox=x=100:y=40:w=120:h=100:c=black:t=fill",
    "warm2": f"color=c=orange:{_S}:d=3,drawbox=x=140:y=50:w=110:h=90:c=black:t=fill",  # looks like warm1
    "navy": f"color=c=navy:{_S}:d=3,drawgrid=w=40:h=40:t=4:c=white",
    "ref": f"testsrc2={_S}:d=3",
    # The same scene darker and with a blue cast (a badly balanced camera).
    "cast": f"testsrc2={_S}:d=3,colorchannelmixer=rr=0.6:gg=0.7:bb=1.0:bg=0.25",
}


@pytest.fixture(scope="module")
def shots_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("propose")
    out = {}
    for name, graph in CLIPS.items():
        out[name] = folder / f"{name}.mp4"
        _ffmpeg("-f", "lavfi", "-i", graph, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", "-pix_fmt", "yuv420p", str(out[name]))
    out["clicks"] = folder / "clicks.m4a"
    _ffmpeg("-f", "lavfi", "-i", CLICKS, "-c:a", "aac", "-b:a", "128k", str(out["clicks"]))
    return out


def _rgb(frame: render_pb2.RenderFrameResponse) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB")).astype(float)


async def test_transitions_follow_the_pan_dissolve_alike_shots_and_cut_the_rest(
    render_service, storage_service, user_factory, shots_media, render_limits
) -> None:
    user = await user_factory()
    ids = [await _upload(storage_service, user, shots_media[n], "video/mp4") for n in ("pan", "warm1", "warm2", "navy")]
    music = await _upload(storage_service, user, shots_media["clicks"], "audio/mp4")
    request = render_pb2.ProposeEditRequest(clip_asset_ids=ids, music_asset_id=music, min_shot_seconds=0.9,
                                            downbeat_min_seconds=60, transitions=True)
    answer = await _stub(render_service).ProposeEdit(request, metadata=user.metadata, timeout=600)
    video = answer.timeline.tracks[0]
    assert [c.asset_id for c in video.clips] == ids, video
    chosen = [c.transition_in.name for c in video.clips[1:]]
    assert chosen == ["slideleft", "fade", ""], chosen
    beats = [BEAT_START + i * BEAT for i in range(24)]
    assert all(min(abs(c - b) for b in beats) <= FRAME for c in answer.cut_seconds), list(answer.cut_seconds)
    for clip, cut in zip(video.clips[1:], answer.cut_seconds, strict=True):
        d = clip.transition_in.duration_seconds
        assert abs(clip.start_seconds + d / 2 - cut) < 1e-6  # centred on the beat
        assert (d > 0) == bool(clip.transition_in.name) and d <= 0.45 + 1e-9
    check_structure(answer.timeline, render_limits)
    # The service renders the proposal: mid-slide, the frame holds both shots side by side.
    slide = video.clips[1]
    t = slide.start_seconds + slide.transition_in.duration_seconds / 2
    frame = _rgb(await _stub(render_service).RenderFrame(render_pb2.RenderFrameRequest(timeline=answer.timeline, time_seconds=t), metadata=user.metadata))
    # The orange shot coming in from the right: its left 100 px (orange, before its black box)
    # are at x 160..260 halfway through.
    right = frame[:, 170:250].reshape(-1, 3).mean(axis=0)
    assert right[0] > 180 and 90 < right[1] < 200 and right[2] < 60, right
    assert frame[:, :150].std() > 30, frame[:, :150].std()  # the bars still on the left
    # Off by default: hard cuts only, exactly as before.
    plain = await _stub(render_service).ProposeEdit(
        render_pb2.ProposeEditRequest(clip_asset_ids=ids, music_asset_id=music, min_shot_seconds=0.9, downbeat_min_seconds=60),
        metadata=user.metadata, timeout=600)
    assert not any(c.HasField("transition_in") for c in plain.timeline.tracks[0].clips)
    assert list(plain.cut_seconds) == list(answer.cut_seconds)


async def test_match_colors_grades_each_shot_toward_the_first_with_a_stored_lut(
    render_service, storage_service, user_factory, shots_media
) -> None:
    user = await user_factory()
    ids = [await _upload(storage_service, user, shots_media[n], "video/mp4") for n in ("ref", "cast")]
    music = await _upload(storage_service, user, shots_media["clicks"], "audio/mp4")
    request = render_pb2.ProposeEditRequest(clip_asset_ids=ids, music_asset_id=music, min_shot_seconds=1.5,
                                            downbeat_min_seconds=60, match_colors=True)
    answer = await _stub(render_service).ProposeEdit(request, metadata=user.metadata, timeout=600)
    first, second = answer.timeline.tracks[0].clips
    assert not first.filters.lut_asset_id and list(answer.lut_asset_ids) == [second.filters.lut_asset_id]
    storage = storage_pb2_grpc.StorageServiceStub(storage_service.channel)
    asset = (await storage.GetAsset(storage_pb2.GetAssetRequest(asset_id=second.filters.lut_asset_id), metadata=user.metadata)).asset
    assert asset.kind == asset_pb2.ASSET_KIND_LUT and asset.labels["viarte.made_by"] == "propose_edit"

    async def mean(timeline, clip) -> np.ndarray:  # type: ignore[no-untyped-def]
        at = clip.start_seconds + 0.5
        got = await _stub(render_service).RenderFrame(render_pb2.RenderFrameRequest(timeline=timeline, time_seconds=at), metadata=user.metadata)
        return _rgb(got).reshape(-1, 3).mean(axis=0)

    reference = await mean(answer.timeline, first)
    matched = await mean(answer.timeline, second)
    unmatched_timeline = render_pb2.ProposeEditResponse.FromString(answer.SerializeToString()).timeline
    unmatched_timeline.tracks[0].clips[1].filters.lut_asset_id = ""
    before = await mean(unmatched_timeline, unmatched_timeline.tracks[0].clips[1])
    gap_before, gap_after = np.abs(before - reference).max(), np.abs(matched - reference).max()
    print(f"colour match: channel means {reference.round(1)} vs cast {before.round(1)} -> matched {matched.round(1)}")
    assert gap_before > 30 and gap_after < 10 and gap_after < gap_before / 3, (reference, before, matched)
    # The same proposal again stores no second LUT: the same content is the same asset.
    again = await _stub(render_service).ProposeEdit(request, metadata=user.metadata, timeout=600)
    assert list(again.lut_asset_ids) == list(answer.lut_asset_ids)


async def test_the_assistants_propose_edit_action_is_a_request_render_accepts(
    render_service, storage_service, user_factory, shots_media
) -> None:
    """The assistant's tool (issue 18) proposes a ProposeEditRequest that the editor sends as is."""
    user = await user_factory()
    ids = [await _upload(storage_service, user, shots_media[n], "video/mp4") for n in ("warm1", "navy")]
    music = await _upload(storage_service, user, shots_media["clicks"], "audio/mp4")
    project = assistant_pb2.ProjectContext(timeline=tl.Timeline(canvas=tl.Canvas(width=160, height=90, fps=25)),
                                           asset_names={i: "x.mp4" for i in [*ids, music]})
    args = {"summary": "Cut to the music", "clip_asset_ids": ids, "music_asset_id": music}
    action = parse_action("call_0", "propose_edit", json.dumps(args), project)
    answer = await _stub(render_service).ProposeEdit(action.propose_edit.request, metadata=user.metadata, timeout=600)
    canvas = answer.timeline.canvas
    assert (canvas.width, canvas.height, canvas.fps) == (160, 90, 25) and len(answer.cut_seconds) >= 1
    assert [c.asset_id for c in answer.timeline.tracks[0].clips] == ids
