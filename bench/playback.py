"""Timeline playback (issue 19): draft-render speed and the time from an edit to the first playable
segment, by the service's engine (plan → the export's graph → 360p fragmented MP4 segments, cached
in a database by content), for a 60 s 1280x720 30 fps timeline.

Timeline: four clips of a 720p test pattern (with sound) cut every 15 s, a title over 5..15 s and a
music tone under all of it (loudness normalised, the default). Printed:
- cold draft of the whole timeline, segment by segment (one ffmpeg at a time, then two at once):
  seconds and speed as a multiple of real time (goal ≥ 2x);
- after a picture edit (brightness of the clip at 30..45 s) with the playhead at 31 s: seconds from
  the edited timeline to the first playable segment (plan + key + render; goal < 1 s), and how many
  segments the edit made stale;
- the same after a sound edit (music volume): the mix's loudness is measured again (every segment's
  gain changes, as in the export);
- a cached segment (nothing edited): plan + key + database read;
- the asset's overview (GetMediaOverview's one decode: filmstrip, peaks, playback proxy; made once
  and kept in .cache/bench-playback) and then picture edits → first playable segment, each edit a
  new brightness (never cached), the old way and the new alternated in one run (twice):
  old: the proxy at the source's 1280x720 (a keyframe every 0.5 s: the original's GOP is x264's
  default 250 frames, so a segment at 31 s decodes from the keyframe at 25 s first), loudnorm's
  linear gain through loudnorm (192 kHz), AAC's default coder;
  new: the proxy at the draft's 640x360 (a quarter of the pixels to decode), the gain as `volume`,
  AAC's fast coder. Wall, the ffmpeg CPU and this process's CPU (plan, key, cache) of each, medians
  of 3. `--with-original` adds edits read from the original; `--latency-only` runs just this part.

Run: .venv/bin/python bench/playback.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from services.render.media import probe  # noqa: E402
from services.render.models import DraftSegmentRow  # noqa: E402, F401 (the table)
from services.render.overview import overview_args, proxy_size  # noqa: E402
from services.render.playback import DraftCache, draft_plan, playback_window, render_draft_segment  # noqa: E402
from services.render.timeline.plan import Plan, Source  # noqa: E402
from services.render.timeline.validate import Limits  # noqa: E402
from viarte.render.v1 import timeline_pb2 as tl  # noqa: E402

CACHE = ROOT / ".cache" / "bench-playback"
SEGMENT = 2.0
DRAFT_HEIGHT = 360


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def media(seconds: float) -> dict[str, Source]:
    CACHE.mkdir(parents=True, exist_ok=True)
    clip, music = CACHE / f"clip-{seconds:g}.mp4", CACHE / f"music-{seconds:g}.m4a"
    if not clip.exists():
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=30:d={seconds}", "-f", "lavfi", "-i", f"sine=f=330:d={seconds}",
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip))
        _ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac", str(music))
    return {
        "clip": Source(str(clip), probe(str(clip), "video/mp4"), "video/mp4", asset_id="clip"),
        "music": Source(str(music), probe(str(music), "audio/mp4"), "audio/mp4", asset_id="music"),
    }


def build(seconds: float) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(width=1280, height=720, fps=30))
    v = t.tracks.add(kind=tl.TRACK_KIND_VIDEO)
    part = seconds / 4
    for i in range(4):
        v.clips.add(asset_id="clip", start_seconds=i * part, source_start_seconds=i * part, source_end_seconds=(i + 1) * part)
    t.tracks.add(kind=tl.TRACK_KIND_TEXT).clips.add(
        start_seconds=5, duration_seconds=10, text=tl.TextStyle(text="Viarte playback", font_size=64))
    t.tracks.add(kind=tl.TRACK_KIND_AUDIO).clips.add(asset_id="music", source_end_seconds=seconds, volume=0.5)
    return t


def plan(t: tl.Timeline, sources: dict[str, Source]) -> Plan:
    return draft_plan(t, sources, Limits(max_duration_seconds=3600), DRAFT_HEIGHT)


async def segment(t: tl.Timeline, sources: dict[str, Source], at: float, cache: DraftCache, work: Path, gate: asyncio.Semaphore,
                  fast_audio: bool = True) -> bool:
    """One request as the service serves it (minus the storage look-ups): plan, key, cache or render."""
    folder = Path(tempfile.mkdtemp(dir=work))
    got = await render_draft_segment(plan(t, sources), at, cache, folder, segment_seconds=SEGMENT, gate=gate,
                                     height=DRAFT_HEIGHT, fast_audio=fast_audio)
    return got.cached


async def whole(t: tl.Timeline, sources: dict[str, Source], cache: DraftCache, work: Path, parallel: int) -> tuple[float, float]:
    p = plan(t, sources)
    starts, at = [], 0.0
    while at < p.canvas.duration - 1e-6:
        w = playback_window(p, round(at * p.canvas.fps), SEGMENT)
        starts.append(w.start / p.canvas.fps)
        at = w.end / p.canvas.fps
    gate = asyncio.Semaphore(parallel)
    began = time.perf_counter()
    cpu = _children_cpu()
    queue = list(starts)

    async def worker() -> None:
        while queue:
            await segment(t, sources, queue.pop(0), cache, work, gate)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return time.perf_counter() - began, _children_cpu() - cpu


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished ffmpeg children: what the draft costs on an idle
    machine, whatever else this shared one is running."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--with-original", action="store_true", help="also edits read from the original (no proxy)")
    args = parser.parse_args()
    sources = media(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        engine = create_engine(f"sqlite:///{work}/cache.db")
        SQLModel.metadata.create_all(engine)
        gate = asyncio.Semaphore(2)
        t = build(args.seconds)
        if args.latency_only:
            await latency(t, sources, DraftCache(engine, 1 << 34), work, gate, args.with_original)
            return
        for parallel in (1, 2):
            cache = DraftCache(engine, 1 << 34)
            with engine.begin() as c:
                c.exec_driver_sql("DELETE FROM render_draft_segment")
            took, cpu = await whole(t, sources, cache, work, parallel)
            print(f"cold draft of {args.seconds:g} s, {parallel} ffmpeg(s) at once: {took:.1f} s wall = {args.seconds / took:.2f}x "
                  f"real time; ffmpeg CPU {cpu:.1f} s = {args.seconds / cpu:.2f}x real time per core (load {os.getloadavg()[0]:.1f})")
        keys_before = cache.keys()

        began = time.perf_counter()
        cached = await segment(t, sources, 31.0, cache, work, gate)
        print(f"cached segment at 31 s (plan + key + read): {time.perf_counter() - began:.2f} s (cached={cached})")

        t.tracks[0].clips[2].filters.brightness = 0.1
        began = time.perf_counter()
        cached = await segment(t, sources, 31.0, cache, work, gate)
        first = time.perf_counter() - began
        await whole(t, sources, cache, work, 2)
        stale = len(cache.keys() - keys_before)
        print(f"picture edit (30..45 s) → first playable segment at 31 s: {first:.2f} s (cached={cached}); "
              f"segments re-rendered for the whole timeline: {stale} of {len(keys_before)}")

        t.tracks[2].clips[0].volume = 0.3
        began = time.perf_counter()
        await segment(t, sources, 31.0, cache, work, gate)
        print(f"sound edit (music volume) → first playable segment at 31 s: {time.perf_counter() - began:.2f} s "
              "(includes measuring the mix's loudness again)")

        await latency(t, sources, cache, work, gate, args.with_original)


def overview(clip: Source, proxy_height: int) -> Path:
    """GetMediaOverview's one decode of the clip (filmstrip, peaks, proxy at ``proxy_height``, 0: the
    source's size as before); the proxy's path, kept in the bench cache between runs."""
    folder = CACHE / f"overview-{clip.info.duration:g}-{proxy_height}"
    if (folder / "proxy.mp4").exists():
        return folder / "proxy.mp4"
    scratch = folder.with_suffix(".part")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command, _ = overview_args("ffmpeg", clip, clip.info, scratch, proxy_height)
    began, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, check=True)
    w, h = proxy_size(clip.info, proxy_height)
    print(f"overview of the {clip.info.duration:g} s {clip.info.width}x{clip.info.height} clip (filmstrip + peaks + {w}x{h} proxy, "
          f"one decode): {time.perf_counter() - began:.1f} s wall, {_children_cpu() - cpu:.1f} s CPU; proxy "
          f"{(scratch / 'proxy.mp4').stat().st_size / 1e6:.1f} MB (original {Path(clip.location).stat().st_size / 1e6:.1f} MB)")
    scratch.rename(folder)
    return folder / "proxy.mp4"


async def latency(t: tl.Timeline, sources: dict[str, Source], cache: DraftCache, work: Path, gate: asyncio.Semaphore,
                  with_original: bool) -> None:
    """Picture edits → first playable segment at 31 s, the old way (a proxy at the source's size,
    loudnorm's linear gain through loudnorm at 192 kHz, AAC's default coder) against the new (a
    proxy at the draft's 360 lines, the gain as ``volume``, AAC's fast coder), alternated in one run."""
    clip = sources["clip"]
    full = await asyncio.to_thread(overview, clip, 0)
    small = await asyncio.to_thread(overview, clip, DRAFT_HEIGHT)
    ways = {
        "old: proxy at 1280x720, loudnorm, AAC twoloop": (
            {**sources, "clip": Source(str(full), clip.info, "video/mp4", asset_id="clip")}, False),
        "new: proxy at 640x360, volume, AAC fast": (
            {**sources, "clip": Source(str(small), clip.info, "video/mp4", asset_id="clip",
                                       decoded_size=proxy_size(clip.info, DRAFT_HEIGHT))}, True),
    }
    order = list(ways) * 2
    if with_original:
        ways["clip read from the original (no proxy)"] = (sources, False)
        order.insert(0, "clip read from the original (no proxy)")
    edit = 0.2  # above the 0.1 of main()'s picture edit: every brightness here is new, never cached
    for label in order:
        chosen, fast = ways[label]
        walls, cpus, own = [], [], []
        for _ in range(3):
            edit += 0.01
            t.tracks[0].clips[2].filters.brightness = round(edit, 3)
            began, cpu, mine = time.perf_counter(), _children_cpu(), _own_cpu()
            cached = await segment(t, chosen, 31.0, cache, work, gate, fast_audio=fast)
            walls.append(time.perf_counter() - began)
            cpus.append(_children_cpu() - cpu)
            own.append(_own_cpu() - mine)
            assert not cached
        print(f"picture edit → first playable segment at 31 s, {label}: median {sorted(walls)[1]:.2f} s wall "
              f"({', '.join(f'{w:.2f}' for w in walls)}), ffmpeg CPU {sorted(cpus)[1]:.2f} s, bench process CPU "
              f"(plan, key, cache) {sorted(own)[1]:.2f} s (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    asyncio.run(main())
