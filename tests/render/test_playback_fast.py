"""Draft segments made cheaply (issue 19: edit → first playable segment under a second): a playback
proxy at the draft's height gives the picture the original gives, whatever the clip's size on the
canvas, and loudnorm's linear gain applied as ``volume`` gives the sound loudnorm gives. The export
keeps loudnorm (its graph is unchanged: tests/render/test_engine.py and friends)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ffmpeg
import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from services.render.loudness import measure_loudness
from services.render.media import probe
from services.render.models import DraftSegmentRow  # noqa: F401 (the table)
from services.render.overview import overview_args, proxy_size
from services.render.playback import DraftCache, draft_plan, render_draft_segment
from services.render.timeline.compile import compile_plan
from services.render.timeline.fx import Loudness, loudnorm_linear_gain
from services.render.timeline.plan import Plan, Source
from services.render.timeline.validate import Limits
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

asyncio_test = pytest.mark.asyncio(loop_scope="session")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Source, Path]:
    """1.5 s of a 1280x720 test pattern (detail everywhere: a misplaced picture differs a lot) with
    a 440 Hz tone, and its playback proxy as GetMediaOverview makes it for 360-line drafts."""
    folder = tmp_path_factory.mktemp("fast")
    clip = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=1.5", "-f", "lavfi",
                    "-i", "sine=f=440:d=1.5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(clip)], check=True)
    source = Source(str(clip), probe(str(clip), "video/mp4"), "video/mp4", asset_id="clip")
    command, _ = overview_args("ffmpeg", source, source.info, folder, 360)
    subprocess.run(command, check=True)
    return source, folder / "proxy.mp4"


def _stream_facts(path: Path) -> tuple[tuple[int, int], list[float]]:
    size = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                           str(path)], capture_output=True, check=True, text=True).stdout.strip().split(",")
    keys = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries", "frame=pts_time",
                           "-of", "csv=p=0", str(path)], capture_output=True, check=True, text=True).stdout.split()
    return (int(size[0]), int(size[1])), [float(k.strip(",")) for k in keys]


def test_the_proxy_is_made_at_the_drafts_height(media: tuple[Source, Path]) -> None:
    source, proxy = media
    assert proxy_size(source.info, 360) == (640, 360)
    assert _stream_facts(proxy) == ((640, 360), [0.0, 0.5, 1.0])
    assert proxy_size(source.info, 0) == (1280, 720)  # no height: the source's size
    small = probe(str(proxy), "video/mp4")
    assert proxy_size(small, 360) == (640, 360) and proxy_size(small, 720) == (640, 360)  # never scaled up


def _plan(source: Source, scale: float = 1.0) -> Plan:
    t = timeline(1280, 720)
    clip = track(t).clips.add(asset_id="clip", source_end_seconds=1.5)
    if scale != 1.0:
        clip.transform.scale.value = scale
    return draft_plan(t, {"clip": source}, Limits(max_duration_seconds=60), 360)


async def _segment(plan: Plan, folder: Path, *, fast_audio: bool = True) -> tuple[Path, str]:
    """Segment 0 rendered into a fresh cache (equal keys must not serve one for the other)."""
    folder.mkdir(parents=True)  # noqa: ASYNC240 (a test's scratch folder)
    engine = create_engine(f"sqlite:///{folder}/cache.db")
    SQLModel.metadata.create_all(engine)
    work = folder / "work"
    work.mkdir()
    got = await render_draft_segment(plan, 0.2, DraftCache(engine, 1 << 30), work, fast_audio=fast_audio)
    assert not got.cached and (got.width, got.height) == (640, 360)
    out = folder / "segment.mp4"
    out.write_bytes(got.media)
    return out, got.key


def _frame(media: Path, at: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(media), "-ss", f"{at}", "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(360, 640, 3).astype(np.float32)


@asyncio_test
@pytest.mark.parametrize("scale", [1.0, 2.0])
async def test_a_segment_from_the_smaller_proxy_shows_what_the_original_shows(media: tuple[Source, Path], tmp_path: Path, scale: float) -> None:
    """At scale 2 the clip's fitted size on the 640x360 draft canvas is the original's own 1280x720:
    the fit needs no scale for the original, but the proxy's frames must still be scaled up."""
    source, proxy = media
    small = Source(str(proxy), source.info, "video/mp4", asset_id="clip", decoded_size=(640, 360))
    original, key = await _segment(_plan(source, scale), tmp_path / "original")
    proxied, proxied_key = await _segment(_plan(small, scale), tmp_path / "proxy")
    for at in (0.1, 0.9, 1.4):
        diff = np.abs(_frame(original, at) - _frame(proxied, at)).mean()
        assert diff < 8.0, (at, diff)  # lossy twice over (CRF 18 proxy, CRF 26 draft); a misplaced picture: 40+
    if scale == 1.0:
        assert proxied_key == key  # the proxy is the same picture: what was rendered from the original stays valid
    else:
        # Read as if it were the original's size (what the fit assumed before it knew the proxy's):
        # another picture. This is what the first assertion would catch.
        unaware = Source(str(proxy), source.info, "video/mp4", asset_id="clip")
        wrong, _ = await _segment(_plan(unaware, 2.0), tmp_path / "unaware")
        assert np.abs(_frame(original, 0.9) - _frame(wrong, 0.9)).mean() > 20


def test_loudnorm_linear_gain_follows_ffmpeg() -> None:
    """af_loudnorm goes linear only with every measurement given (LRA 0 counts as missing), the
    gained true peak at most the target's -1 dBTP and the measured range within the LRA target."""
    assert loudnorm_linear_gain(-14.0, Loudness(-20.85, 0.01, -15.29)) == pytest.approx(6.85)
    assert loudnorm_linear_gain(-14.0, Loudness(-10.0, 3.0, -6.0)) == pytest.approx(-4.0)
    assert loudnorm_linear_gain(-14.0, Loudness(-20.0, 0.0, -15.0)) is None  # LRA 0.00: dynamic
    assert loudnorm_linear_gain(-14.0, Loudness(-30.0, 5.0, -3.0)) is None  # +16 dB would peak at +13 dBTP
    assert loudnorm_linear_gain(-14.0, Loudness(-14.0, 60.0, -20.0)) is None  # range over loudnorm's 50 LU cap
    assert loudnorm_linear_gain(-14.0, Loudness(-20.0, 4.0, -7.0)) == pytest.approx(6.0)  # peak lands on -1.0: linear


def _graph(plan: Plan, folder: Path, loudness: Loudness, fast: bool) -> str:
    graph = compile_plan(plan, folder, loudness=loudness, linear_gain_as_volume=fast)
    assert graph.audio is not None
    return " ".join(ffmpeg.output(graph.audio, "-", f="null").compile())


def _pcm(media: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(media), "-vn", "-f", "f32le", "-ac", "1", "-ar", "48000", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def _with_music(source: Source, folder: Path) -> Plan:
    """The clip under 6 s of music whose level steps up at 3 s: a loudness range loudnorm's linear
    mode accepts (a steady tone measures LRA 0.00, which af_loudnorm reads as no measurement)."""
    music = folder / "music.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "aevalsrc='(0.05+0.15*gte(t,3))*sin(2*PI*330*t)':s=48000:d=6",
                    "-c:a", "aac", str(music)], check=True)
    t = timeline(1280, 720)
    track(t).clips.add(asset_id="clip", source_end_seconds=1.5)
    track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id="music", source_end_seconds=6)
    sources = {"clip": source, "music": Source(str(music), probe(str(music), "audio/mp4"), "audio/mp4", asset_id="music")}
    return draft_plan(t, sources, Limits(max_duration_seconds=60), 360)


@asyncio_test
async def test_the_drafts_volume_sounds_as_loudnorm(media: tuple[Source, Path], tmp_path: Path) -> None:
    source, _ = media
    plan = _with_music(source, tmp_path)
    measured = await measure_loudness(plan, tmp_path / "m")
    assert measured is not None and plan.loudness is not None
    gain = loudnorm_linear_gain(plan.loudness, measured)
    assert gain is not None and gain > 3  # the tone is quieter than -14 LUFS: a real gain to apply
    fast, slow = _graph(plan, tmp_path / "g1", measured, True), _graph(plan, tmp_path / "g2", measured, False)
    assert f"volume={gain:.2f}dB" in fast and "loudnorm" not in fast
    assert "loudnorm" in slow and "volume=" not in slow.replace("volume=1", "")
    # Where loudnorm would go dynamic the draft keeps it (its gain moves; no one volume says it).
    dynamic = Loudness(measured.integrated, 0.0, measured.true_peak)
    assert "loudnorm" in _graph(plan, tmp_path / "g3", dynamic, True)

    fast_media, _ = await _segment(plan, tmp_path / "fast")
    slow_media, _ = await _segment(plan, tmp_path / "slow", fast_audio=False)
    a, b = _pcm(fast_media), _pcm(slow_media)
    n = min(a.size, b.size)
    assert n > 48000 * 1.4
    core = slice(4800, n - 4800)  # away from the segment's edges (AAC's priming and tail)
    level = 20 * np.log10(np.sqrt(np.mean(a[core] ** 2)) / np.sqrt(np.mean(b[core] ** 2)))
    assert abs(level) < 0.2, level  # the same gain: loudnorm's 192 kHz round trip and two AAC coders aside
    assert np.corrcoef(a[core], b[core])[0, 1] > 0.99  # the same sound, in step
