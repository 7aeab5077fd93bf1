"""The cost of effects (issue 18): one timeline rendered plain, then with one effect at a time,
then with all of them, by the service's engine (plan → one ffmpeg graph), same machine, same run.

Timeline: --seconds of 1280x720 30 fps, four clips of a test pattern, a music tone. Effects:
3 transitions (circleopen, pixelize eased in-out, slideleft) instead of cuts, a 33-point LUT on
every clip, a green-screen clip keyed over the rest (over its length), loudness normalisation
(two passes: the ebur128 measurement of the mix, then loudnorm). Printed: seconds per variant
and each effect's cost relative to the plain render. Then AnalyzeMedia's worker (the process the
service runs) on the clip (720p video: scenes) and on the music (beats, loudness, silences), in
seconds per minute of media (numba's first-use compilation excluded: one warm-up run first).

Run: .venv/bin/python bench/effects.py [--seconds 30] [--rounds 1] [--analyze-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.kit.cube_lut import parse_cube  # noqa: E402
from services.render.encoder import Quality, encoder_options  # noqa: E402
from services.render.media import probe  # noqa: E402
from services.render.pipeline import render_plan  # noqa: E402
from services.render.timeline.plan import Source  # noqa: E402
from services.render.timeline.validate import Limits, plan_timeline  # noqa: E402
from viarte.render.v1 import timeline_pb2 as tl  # noqa: E402

CACHE = ROOT / ".cache" / "bench-effects"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def media(seconds: float) -> dict[str, Source]:
    CACHE.mkdir(parents=True, exist_ok=True)
    clip, screen, music = CACHE / f"clip-{seconds:g}.mp4", CACHE / f"screen-{seconds:g}.mp4", CACHE / f"music-{seconds:g}.m4a"
    if not clip.exists():
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=30:d={seconds}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(clip))
        _ffmpeg("-f", "lavfi", "-i", f"color=0x00FF00:s=1280x720:r=30:d={seconds},drawbox=x=440:y=160:w=400:h=400:color=red:t=fill",
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(screen))
        _ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac", str(music))
    return {
        "clip": Source(str(clip), probe(str(clip), "video/mp4"), "video/mp4"),
        "screen": Source(str(screen), probe(str(screen), "video/mp4"), "video/mp4"),
        "music": Source(str(music), probe(str(music), "audio/mp4"), "audio/mp4"),
    }


def build(seconds: float, *, transitions: bool, lut: bool, key: bool, loudness: bool) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(width=1280, height=720, fps=30))
    v = t.tracks.add(kind=tl.TRACK_KIND_VIDEO)
    part, xf = seconds / 4, 1.0
    names = ("circleopen", "pixelize", "slideleft")
    for i in range(4):
        start = i * part - (xf if transitions and i else 0.0)
        c = v.clips.add(asset_id="clip", start_seconds=max(start, 0.0), source_start_seconds=0.0,
                        source_end_seconds=part + (xf if transitions and i else 0.0))
        if transitions and i:
            c.transition_in.CopyFrom(tl.Transition(name=names[i - 1], duration_seconds=xf, easing=tl.EASING_EASE_IN_OUT if i == 2 else 0))
        if lut:
            c.filters.lut_asset_id = "lut"
    if key:
        s = t.tracks.add(kind=tl.TRACK_KIND_VIDEO).clips.add(asset_id="screen", source_end_seconds=seconds)
        s.filters.chroma_key.CopyFrom(tl.ChromaKey(color="#00ff00", similarity=0.3, blend=0.05, spill=0.5))
    t.tracks.add(kind=tl.TRACK_KIND_AUDIO).clips.add(asset_id="music", source_end_seconds=seconds)
    t.mix.disable_loudness_normalization = not loudness
    return t


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--analyze-only", action="store_true")
    args = ap.parse_args()
    sources = media(args.seconds)
    if not args.analyze_only:
        await renders(args, sources)
    analysis(sources)


def _analyse(src: Source) -> float:
    info = src.info
    request = {"source": src.location, "content_type": src.content_type, "duration": info.duration, "fps": info.fps,
               "width": info.width, "height": info.height, "has_video": info.has_video, "has_audio": info.has_audio}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "services.render.analysis_worker"], input=json.dumps(request).encode(),
                         capture_output=True, check=True, cwd=ROOT).stdout
    assert "ok" in json.loads(out), out[:300]
    return time.perf_counter() - t0


def analysis(sources: dict[str, Source]) -> None:
    _analyse(sources["music"])  # warm-up: numba compiles librosa's kernels once per machine
    for name in ("clip", "music"):
        seconds = _analyse(sources[name])
        per_minute = seconds / sources[name].info.duration * 60
        print(f"AnalyzeMedia {name:6s} {seconds:6.2f} s for {sources[name].info.duration:g} s = {per_minute:.1f} s per minute", flush=True)


async def renders(args: argparse.Namespace, sources: dict[str, Source]) -> None:
    steps = [i / 32 for i in range(33)]
    warm = "".join(f"{min(r * 1.1, 1):.6f} {g:.6f} {b * 0.9:.6f}\n" for b in steps for g in steps for r in steps)
    luts = {"lut": parse_cube(f"LUT_3D_SIZE 33\n{warm}".encode())}
    limits = Limits(max_width=1920, max_height=1080, max_duration_seconds=600)
    encoding = encoder_options("libx264", Quality.DRAFT)
    none = dict(transitions=False, lut=False, key=False, loudness=False)
    variants = {
        "plain": none,
        "3 transitions": none | {"transitions": True},
        "LUT": none | {"lut": True},
        "chroma key": none | {"key": True},
        "loudness": none | {"loudness": True},
        "all": dict(transitions=True, lut=True, key=True, loudness=True),
    }
    times: dict[str, float] = {}
    for name, flags in variants.items():
        plan = plan_timeline(build(args.seconds, **flags), sources, limits, luts=luts)
        best = float("inf")
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                await render_plan(plan, Path(work), encoding)
                best = min(best, time.perf_counter() - t0)
        times[name] = best
        extra = f"  +{best - times['plain']:.2f} s ({best / times['plain']:.2f}x plain)" if name != "plain" else ""
        print(f"{name:14s} {best:7.2f} s{extra}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
