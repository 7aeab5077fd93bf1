"""Stabilisation (vidstab, two passes, analysis cached per source) of a synthetic shaking clip."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from services.render.capabilities import capabilities
from services.render.media import probe
from services.render.pipeline import render_frame
from services.render.stabilize import prepare_stabilization
from services.render.timeline.plan import Source
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import jpeg_rgb
from tests.render.test_engine import render
from tests.render.test_transitions import all_frames, block_diff
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

pytestmark = pytest.mark.skipif(not capabilities("ffmpeg").has("stabilize"), reason="this ffmpeg has no vidstab")


@pytest.fixture(scope="module")
def shaky(tmp_path_factory) -> Source:
    """2 s 480x270 at 30 fps: a still (mandelbrot) seen through a window shaking like a hand
    (two sines per axis, up to 16 px). vidstab needs texture and some size to measure motion."""
    root = tmp_path_factory.mktemp("shaky")
    still, clip = root / "still.png", root / "shaky.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "mandelbrot=s=640x400:end_pts=1", "-frames:v", "1", str(still)], check=True)
    shake = "crop=480:270:x='80+10*sin(n*1.3)+6*sin(n*3.1)':y='65+8*cos(n*1.7)+5*sin(n*2.9)'"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "30", "-i", str(still), "-vf", shake,
                    "-t", "2", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(clip)], check=True)
    return Source(str(clip), probe(str(clip), "video/mp4"), "video/mp4", asset_id="shaky-asset")


def motion(frames: np.ndarray) -> float:
    """Mean frame-to-frame change of the centre (borders excluded: stabilisation moves them)."""
    centre = frames[:, 60:210, 120:360].astype(float)
    return float(np.abs(np.diff(centre, axis=0)).mean())


async def test_stabilisation_reduces_frame_to_frame_motion_and_caches_the_analysis(render_media, render_limits, shaky, tmp_path) -> None:
    sources = render_media.sources() | {"shaky": shaky}
    frames = {}
    for on in (False, True):
        t = timeline(width=480, height=270)
        track(t).clips.add(asset_id="shaky", source_start_seconds=0.5, source_end_seconds=2, filters=tl.ClipFilters(stabilize=on))
        plan = await prepare_stabilization(plan_timeline(t, sources, render_limits), tmp_path / "cache")
        frames[on] = all_frames((await render(plan, tmp_path / str(on))).video, 480, 270)
    before, after = motion(frames[False]), motion(frames[True])
    print(f"frame-to-frame motion {before:.1f} -> {after:.1f}")
    assert len(frames[True]) == len(frames[False]) == 45 and after < 0.25 * before, (before, after)
    analysis = tmp_path / "cache" / "shaky-asset.trf"
    stamp = analysis.stat().st_mtime_ns
    again = await prepare_stabilization(plan, tmp_path / "cache")  # cached per asset: no second analysis
    assert analysis.stat().st_mtime_ns == stamp and again.stabilization == {"shaky-asset": str(analysis)}
    # A preview frame runs the same graph (the source decoded from its start, so the frame matches).
    jpeg, _, _ = await render_frame(again, 1.0, tmp_path / "frame")
    assert block_diff(jpeg_rgb(jpeg), frames[True][30]) < 8
