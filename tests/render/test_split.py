"""One render split over several workers (issue 15), on the local executor's path (segments as
concurrent ffmpegs): cut points, keyframes at the joins, and frame-exactness against one render."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.render.encoder import EncoderOptions
from services.render.ffmpeg_process import FFmpegProgress
from services.render.pipeline import render_plan
from services.render.segments import render_split, render_window, segment_windows
from services.render.timeline.compile import Window
from services.render.timeline.plan import Plan
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import BT601, colour_tags, probe_file
from tests.render.timelines import crossfade, timeline, track
from viarte.render.v1 import timeline_pb2 as tl

LOSSLESS = EncoderOptions("libx264", {"preset": "ultrafast", "crf": 0})
HIGH = EncoderOptions("libx264", {"preset": "fast", "crf": 18})
# Bounds, per frame, split render vs one render of the same plan (measured on this busy test
# pattern: lossless Y identical, chroma >= 36.5 dB; CRF 18 Y >= 39.7 dB, chroma >= 34.5 dB):
# - lossless: luma bit-identical (the same pictures, frame for frame); chroma > 34 dB, because
#   ffmpeg 5.1's xfade works in 4:4:4, so the frames of a transition's clips rendered in a segment
#   without that transition skip one 4:2:0 -> 4:4:4 -> 4:2:0 round trip (invisible, ~1 level);
# - CRF 18 (two encodes with different GOP starts and rate-control history): Y > 38 dB,
#   chroma > 32 dB. One frame off fails all of them by far (checked below).
MIN_Y_DB, MIN_C_DB, MIN_Y_CRF18_DB, MIN_C_CRF18_DB = 99.0, 34.0, 38.0, 32.0


def busy_timeline(ids: dict[str, str] | None = None) -> tl.Timeline:
    """6 s of moving test pattern: bars, a crossfade across the middle, a keyframed overlay, text
    and sound (every kind of element crosses a cut). ``ids``: asset ids by media name."""
    ids = ids or {}
    t = timeline()
    v = track(t)
    v.clips.add(asset_id=ids.get("bars", "bars"), source_end_seconds=3)
    v.clips.add(asset_id=ids.get("bars", "bars"), start_seconds=2.5, source_start_seconds=0.5, source_end_seconds=3,
                transition_in=crossfade(0.5))
    v.clips.add(asset_id=ids.get("red", "red"), start_seconds=5, source_end_seconds=1)
    over = track(t).clips.add(asset_id=ids.get("blue", "blue"), start_seconds=0.5, source_end_seconds=3, fit=tl.FIT_STRETCH)
    over.transform.scale.value = 0.3
    over.transform.x.keyframes.add(time_seconds=0.0, value=0.2)
    over.transform.x.keyframes.add(time_seconds=3.0, value=0.8, easing=tl.EASING_EASE_IN_OUT)
    track(t, kind=tl.TRACK_KIND_TEXT).clips.add(start_seconds=1, duration_seconds=4, text=tl.TextStyle(text="split", font_size=20))
    return t


def busy_plan(render_media, render_limits) -> Plan:
    return plan_timeline(busy_timeline(), render_media.sources(), render_limits)


def decode(path: Path) -> np.ndarray:
    """Frames as rows of raw 4:2:0 bytes (Y plane, then U and V)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 160 * 90 * 3 // 2).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def scores(one: np.ndarray, many: np.ndarray, shift: int = 0) -> tuple[float, float]:
    """The worst per-frame (luma, chroma) PSNR of ``many`` against ``one`` (``shift`` frames later)."""
    y = 160 * 90
    pairs = list(zip(one[: len(one) - shift], many[shift:], strict=True))
    return min(psnr(a[:y], b[:y]) for a, b in pairs), min(psnr(a[y:], b[y:]) for a, b in pairs)


def keyframes(path: Path) -> list[int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=key_frame",
                          "-of", "json", str(path)], capture_output=True, check=True).stdout
    return [i for i, f in enumerate(json.loads(out)["frames"]) if f["key_frame"]]


def test_cuts_are_even_and_never_inside_a_transition(render_media, render_limits) -> None:
    plan = busy_plan(render_media, render_limits)
    assert plan.canvas.frames == 180
    # the crossfade spans frames [75, 90): an even cut at 90 is fine, 3 parts cut at 60 and 120
    assert segment_windows(plan, 2) == [Window(0, 90), Window(90, 180)]
    assert segment_windows(plan, 3) == [Window(0, 60), Window(60, 120), Window(120, 180)]
    # 7 parts: the cut at round(180*3/7) = 77 falls inside the crossfade and moves back to 75
    windows = segment_windows(plan, 7)
    assert [w.start for w in windows] == [0, 26, 51, 75, 103, 129, 154]
    assert sum(w.frames for w in windows) == 180 and segment_windows(plan, 1) == [Window(0, 180)]


async def _both(plan: Plan, tmp_path: Path, encoding: EncoderOptions, parts: int):
    (tmp_path / "one").mkdir(parents=True)
    (tmp_path / "split").mkdir()
    single = await render_plan(plan, tmp_path / "one", encoding)

    async def run_segment(i: int, window: Window, out: Path, frames) -> int:
        return await render_window(plan, window, out, encoding, on_frames=frames)

    seen: list[FFmpegProgress] = []
    split = await render_split(plan, tmp_path / "split", encoding, parts, run_segment, on_progress=seen.append)
    assert seen[-1].frame == seen[-1].total_frames == plan.canvas.frames
    return single, split


@pytest.mark.asyncio(loop_scope="session")
async def test_split_render_is_frame_exact_against_one_render(render_media, render_limits, tmp_path) -> None:
    plan = busy_plan(render_media, render_limits)
    single, split = await _both(plan, tmp_path / "lossless", LOSSLESS, 3)
    a, b = probe_file(single.video), probe_file(split.video)
    assert a["frames"] == b["frames"] == split.frames == 180
    assert (b["width"], b["height"], b["fps"], b["codec"], b["audio_codec"]) == (160, 90, 30.0, "h264", "aac")
    assert abs(float(b["video_duration"]) - 6.0) <= 1 / 30 + 1e-6
    assert split.poster.read_bytes()[:2] == b"\xff\xd8"
    assert colour_tags(single.video) == colour_tags(split.video) == BT601  # each part tagged, kept by the join
    # each segment starts with a keyframe (a fresh encode), joined without re-encoding
    assert {0, 60, 120} <= set(keyframes(split.video))
    # the sound is the whole timeline's, rendered once: same length as the single render's
    assert abs(float(a["duration"]) - float(b["duration"])) < 0.05
    one, many = decode(single.video), decode(split.video)
    luma, chroma = scores(one, many)
    assert luma >= MIN_Y_DB and chroma > MIN_C_DB, (luma, chroma)
    # the bounds mean something: one frame off is far below them
    assert max(scores(one, many, 1)) < MIN_C_CRF18_DB - 5
    # lossy: two CRF 18 encodes of the same pictures
    single, split = await _both(plan, tmp_path / "crf18", HIGH, 2)
    luma, chroma = scores(decode(single.video), decode(split.video))
    assert luma > MIN_Y_CRF18_DB and chroma > MIN_C_CRF18_DB, (luma, chroma)


def test_upscale_ranges_sit_on_batch_boundaries_and_the_last_is_open() -> None:
    from services.render.ray_runner import frame_ranges

    assert frame_ranges(15, 2, 4) == [(0, 8), (8, 0)]
    assert frame_ranges(100, 3, 4) == [(0, 32), (32, 68), (68, 0)]
    assert frame_ranges(3, 4, 4) == [(0, 0)]  # one batch: one part
    assert all(a % 4 == 0 for a, _ in frame_ranges(1001, 7, 4))
