"""AnalyzeMedia over the real services (issue 18): synthetic media with known cuts, dissolves and
beats, made with ffmpeg's lavfi sources; the detected times are checked within stated tolerances."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from tests.render.test_service import upload_media
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(900)]

FPS = 30
FRAME = 1 / FPS
CUTS = [2.0, 4.0, 8.0, 10.0, 14.0]
DISSOLVES = [(6.0, 7.0), (12.0, 13.0)]
BEAT_START, BEAT = 0.25, 0.5  # 120 BPM, the first beat of each 4/4 bar accented
_S = f"s=320x180:r={FPS}"
SHOTS = (
    f"testsrc={_S}:d=2[a];smptebars={_S}:d=2[b];mandelbrot={_S}:end_scale=0.3,trim=duration=3[c];"
    f"rgbtestsrc={_S}:d=2[d];color=c=navy:{_S}:d=2,drawgrid=w=40:h=40:t=4:c=white[e];testsrc2={_S}:d=3[f];"
    f"color=c=orange:{_S}:d=2,drawbox=x=100:y=40:w=120:h=100:c=black:t=fill[g];yuvtestsrc={_S}:d=2[h];"
)
# 8 shots: hard cuts at 2, 4, 8, 10, 14 s (concat), 1 s dissolves over 6-7 and 12-13 s (xfade).
EDIT = (
    "[a][b][c]concat=n=3,format=yuv420p,settb=1/30[abc];[d]format=yuv420p[d2];[abc][d2]xfade=duration=1:offset=6[ad];"
    "[e]format=yuv420p[e2];[f]format=yuv420p[f2];[ad][e2][f2]concat=n=3,settb=1/30[af];[g]format=yuv420p[g2];"
    "[af][g2]xfade=duration=1:offset=12[ag];[h]format=yuv420p[h2];[ag][h2]concat=n=2[v]"
)
CLICKS = (
    f"aevalsrc='(if(lt(mod(t-{BEAT_START},2),{BEAT}),1,0.4))*sin(2*PI*1000*t)*exp(-60*mod(t-{BEAT_START},{BEAT}))"
    f"*gte(t,{BEAT_START})':s=44100:d=12"
)
# A tone, 1.5 s of silence, the tone again.
PAUSE = "aevalsrc='0.3*sin(2*PI*440*t)*(lt(t,2)+gte(t,3.5))':s=44100:d=5"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def analysis_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("analysis")
    cuts, clicks, pause = folder / "cuts.mp4", folder / "clicks.m4a", folder / "pause.m4a"
    _ffmpeg("-filter_complex", SHOTS + EDIT, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", str(cuts))
    _ffmpeg("-f", "lavfi", "-i", CLICKS, "-c:a", "aac", "-b:a", "128k", str(clicks))
    _ffmpeg("-f", "lavfi", "-i", PAUSE, "-c:a", "aac", "-b:a", "128k", str(pause))
    return {"cuts": cuts, "clicks": clicks, "pause": pause}


async def _upload(storage_service, user, path: Path, ctype: str) -> str:  # type: ignore[no-untyped-def]
    data = await asyncio.to_thread(path.read_bytes)
    return str(await storage_service.upload(user, data, path.name, ctype))


def _stub(render_service) -> render_pb2_grpc.RenderServiceStub:  # type: ignore[no-untyped-def]
    return render_pb2_grpc.RenderServiceStub(render_service.channel)


async def test_scene_cuts_within_a_frame_and_dissolves_inside_their_span(render_service, storage_service, user_factory, analysis_media) -> None:
    user = await user_factory()
    asset = await _upload(storage_service, user, analysis_media["cuts"], "video/mp4")
    answer = await _stub(render_service).AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=asset), metadata=user.metadata, timeout=600)
    a = answer.analysis
    assert not answer.cached and a.has_video and not a.has_audio and abs(a.duration_seconds - 16) < 0.1
    found = [(c.time_seconds, c.kind) for c in a.scene_changes]
    cut, dissolve = render_pb2.SCENE_CHANGE_KIND_CUT, render_pb2.SCENE_CHANGE_KIND_DISSOLVE
    # Tolerance: a hard cut within one frame; a dissolve anywhere inside its 1 s span.
    hits = sum(any(k == cut and abs(t - want) <= FRAME + 1e-6 for t, k in found) for want in CUTS)
    hits += sum(any(k == dissolve and lo <= t <= hi for t, k in found) for lo, hi in DISSOLVES)
    precision, recall = hits / max(1, len(found)), hits / (len(CUTS) + len(DISSOLVES))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    assert f1 >= 0.95, (f1, found)
    spans = [(c.start_seconds, c.end_seconds) for c in a.scene_changes if c.kind == dissolve]
    assert all(any(a0 <= lo and hi <= b0 for a0, b0 in spans) for lo, hi in DISSOLVES), spans  # the span holds it
    print(f"scene F1 {f1:.2f}: {found}")


async def test_beats_of_a_120_bpm_click_track_within_a_frame_at_30_fps(render_service, storage_service, user_factory, analysis_media) -> None:
    user = await user_factory()
    asset = await _upload(storage_service, user, analysis_media["clicks"], "audio/mp4")
    stub = _stub(render_service)
    answer = await stub.AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=asset), metadata=user.metadata, timeout=600)
    a = answer.analysis
    assert a.has_audio and not a.has_video and not a.scene_changes
    assert abs(a.tempo_bpm - 120) <= 1.5, a.tempo_bpm
    expected = [BEAT_START + i * BEAT for i in range(24)]
    errors = [min(abs(t - want) for t in a.beat_seconds) for want in expected]
    assert max(errors) <= FRAME and len(a.beat_seconds) == len(expected), (errors, list(a.beat_seconds))
    assert [round(t) for t in a.downbeat_seconds] == [round(BEAT_START + 2 * i) for i in range(6)], list(a.downbeat_seconds)
    # Loudness: ffmpeg's own ebur128 summary of the same file, to a tenth of an LU.
    log = (await asyncio.to_thread(
        subprocess.run, ["ffmpeg", "-nostats", "-i", str(analysis_media["clicks"]), "-af", "ebur128", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )).stderr
    integrated = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", log)[-1])
    assert abs(a.integrated_lufs - integrated) <= 0.1, (a.integrated_lufs, integrated)
    print(f"tempo {a.tempo_bpm:.2f}; beat error max {max(errors) * 1000:.1f} ms; {a.integrated_lufs:.1f} LUFS")
    # The same asset again: the cached answer, the same numbers.
    again = await stub.AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=asset), metadata=user.metadata, timeout=60)
    assert again.cached and again.analysis == a


async def test_silences_are_found(render_service, storage_service, user_factory, analysis_media) -> None:
    user = await user_factory()
    asset = await _upload(storage_service, user, analysis_media["pause"], "audio/mp4")
    answer = await _stub(render_service).AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=asset), metadata=user.metadata, timeout=600)
    spans = [(s.start_seconds, s.end_seconds) for s in answer.analysis.silences]
    assert len(spans) == 1 and abs(spans[0][0] - 2.0) <= 0.1 and abs(spans[0][1] - 3.5) <= 0.1, spans


async def test_what_cannot_be_analysed_is_refused_at_asset_id(render_service, storage_service, user_factory, render_media) -> None:
    user, other = await user_factory(), await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = _stub(render_service)
    for asset_id, code, reason in (
        (ids["green"], grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),  # a picture
        ("", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=asset_id), metadata=user.metadata, timeout=60)
        err = from_rpc_error(info.value)
        assert info.value.code() == code and err.reason == reason
        assert [v.field for v in err.field_violations] == ["asset_id"]
    with pytest.raises(grpc.aio.AioRpcError) as info:  # another user's asset: as if missing
        await stub.AnalyzeMedia(render_pb2.AnalyzeMediaRequest(asset_id=ids["tone"]), metadata=other.metadata, timeout=60)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_proposed_edit_cuts_on_beats_inside_shots(render_service, storage_service, user_factory, analysis_media, render_limits) -> None:
    from services.render.timeline.validate import check_structure

    user = await user_factory()
    clip = await _upload(storage_service, user, analysis_media["cuts"], "video/mp4")
    music = await _upload(storage_service, user, analysis_media["clicks"], "audio/mp4")
    request = render_pb2.ProposeEditRequest(clip_asset_ids=[clip], music_asset_id=music, min_shot_seconds=0.9)
    answer = await _stub(render_service).ProposeEdit(request, metadata=user.metadata, timeout=600)
    beats = [BEAT_START + i * BEAT for i in range(24)]
    assert len(answer.cut_seconds) >= 4, list(answer.cut_seconds)
    assert all(min(abs(c - b) for b in beats) <= FRAME for c in answer.cut_seconds), list(answer.cut_seconds)
    video, sound = answer.timeline.tracks
    edges = [c.start_seconds for c in video.clips[1:]]
    assert edges == list(answer.cut_seconds)  # back to back, each cut where the next clip starts
    boundaries = CUTS + [lo for lo, _ in DISSOLVES] + [hi for _, hi in DISSOLVES]
    for c in video.clips:  # no scene change inside a clip of the edit
        assert not [b for b in boundaries if c.source_start_seconds + 0.01 < b < c.source_end_seconds - 0.01], c
    assert sound.clips[0].asset_id == music and answer.timeline.canvas.width == 320
    check_structure(answer.timeline, render_limits)
    print(f"proposed cuts {list(answer.cut_seconds)}")
    with pytest.raises(grpc.aio.AioRpcError) as info:  # a silent "music": nothing to cut on
        await _stub(render_service).ProposeEdit(
            render_pb2.ProposeEditRequest(clip_asset_ids=[clip], music_asset_id=clip), metadata=user.metadata, timeout=600
        )
    assert [v.field for v in from_rpc_error(info.value).field_violations] == ["music_asset_id"]
