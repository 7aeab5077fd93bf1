"""Stabilisation (vidstab, two passes, the analysis stored once per source in storage) of a synthetic shaking clip."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.render import stabilize
from services.render.capabilities import capabilities
from services.render.media import probe
from services.render.pipeline import render_frame
from services.render.stabilize import fetch_stabilization, object_key, prepare_stabilization
from services.render.timeline.plan import Source
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import jpeg_rgb
from tests.render.test_engine import render
from tests.render.test_transitions import all_frames, block_diff
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

pytestmark = pytest.mark.skipif(not capabilities("ffmpeg").has("stabilize"), reason="this ffmpeg has no vidstab")


def make_shaky(root: Path, seconds: float = 2, width: int = 480, height: int = 270) -> Path:
    """A still (mandelbrot) seen through a window shaking like a hand (two sines per axis, up to
    16 px), at 30 fps. vidstab needs texture and some size to measure motion."""
    still, clip = root / "still.png", root / f"shaky-{width}x{height}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"mandelbrot=s={width + 160}x{height + 130}:end_pts=1",
                    "-frames:v", "1", str(still)], check=True)
    shake = f"crop={width}:{height}:x='80+10*sin(n*1.3)+6*sin(n*3.1)':y='65+8*cos(n*1.7)+5*sin(n*2.9)'"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "30", "-i", str(still), "-vf", shake,
                    "-t", str(seconds), "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


@pytest.fixture(scope="module")
def shaky(tmp_path_factory) -> Source:
    """2 s 480x270 at 30 fps of hand-held shake."""
    clip = make_shaky(tmp_path_factory.mktemp("shaky"))
    return Source(str(clip), probe(str(clip), "video/mp4"), "video/mp4", asset_id=f"shaky-{uuid.uuid4().hex}")


def motion(frames: np.ndarray) -> float:
    """Mean frame-to-frame change of the centre (borders excluded: stabilisation moves them)."""
    centre = frames[:, 60:210, 120:360].astype(float)
    return float(np.abs(np.diff(centre, axis=0)).mean())


class Counted:
    """Counts vidstab's first passes (the real one runs)."""

    def __init__(self, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.runs = 0
        real = stabilize._detect

        async def detect(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.runs += 1
            await real(*args, **kwargs)

        monkeypatch.setattr(stabilize, "_detect", detect)


async def test_stabilisation_reduces_frame_to_frame_motion_and_stores_the_analysis(render_media, render_limits, shaky, tmp_path,
                                                                                 render_service, monkeypatch) -> None:
    storage = render_service.server.render_storage  # the real storage service's objects
    counted = Counted(monkeypatch)
    sources = render_media.sources() | {"shaky": shaky}
    frames = {}
    for on in (False, True):
        t = timeline(width=480, height=270)
        track(t).clips.add(asset_id="shaky", source_start_seconds=0.5, source_end_seconds=2, filters=tl.ClipFilters(stabilize=on))
        plan = await prepare_stabilization(plan_timeline(t, sources, render_limits), storage, tmp_path / "cache")
        plan = await fetch_stabilization(plan, tmp_path / "cache")
        frames[on] = all_frames((await render(plan, tmp_path / str(on))).video, 480, 270)
    before, after = motion(frames[False]), motion(frames[True])
    print(f"frame-to-frame motion {before:.1f} -> {after:.1f}")
    assert len(frames[True]) == len(frames[False]) == 45 and after < 0.25 * before, (before, after)
    assert counted.runs == 1
    # Stored per source and parameters, for every replica: another server's empty cache fetches it.
    key = object_key(shaky)
    assert key.startswith(f"render/vidstab/v1/{shaky.asset_id}/nosha-") and next(iter(plan.analyses.values())).key == key
    async with httpx.AsyncClient() as client:
        stored = (await client.get(await storage.resolve_object(key))).content
    elsewhere = await fetch_stabilization(await prepare_stabilization(plan, storage, tmp_path / "other"), tmp_path / "other")
    assert counted.runs == 1  # no second analysis
    (path,) = elsewhere.stabilization.values()
    local = await asyncio.to_thread(Path(path).read_bytes)
    assert Path(path).parent == tmp_path / "other" and local == stored and len(stored) > 1000
    # A preview frame runs the same graph (the source decoded from its start, so the frame matches).
    jpeg, _, _ = await render_frame(elsewhere, 1.0, tmp_path / "frame")
    assert block_diff(jpeg_rgb(jpeg), frames[True][30]) < 8
