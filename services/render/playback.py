"""Timeline playback (issue 19): draft segments of the export's own filter graph, cached by content.

A segment is a window of the timeline on a fixed grid (``draft_segment_seconds``), its cuts moved
back out of transitions exactly as a split render's are (xfade needs both of its sides), compiled
with ``compile_plan`` (the one graph: same clips, effects, text and mix, loudness included; the
loudness gain applied with ``volume`` where loudnorm would apply one linear gain) and encoded small
and fast: 360p H.264 + AAC (its fast coder) as one fragmented MP4 that Media Source Extensions
append as it is. Videos are read from their playback proxies (``overview.py``: 360 lines, a
keyframe every half second) once those exist. Every segment carries a sound track (silence where the timeline has none) so one
SourceBuffer with one codec string plays them all.

The cache key is the SHA-256 of the ffmpeg command that renders the segment, with each presigned
URL replaced by its asset id and the scratch folder by a placeholder, plus the content of the files
the compiler wrote (text, LUTs). Only clips that overlap a window reach its graph, so an edit
changes the keys (and re-renders) only the segments it touches. An edit of the sound when the mix
is loudness-normalised changes the measured gain, and with it every segment: the export would
change everywhere too. The measurement itself is cached under the hash of the mix's graph.

Segments live in the render database (``render_draft_segment``), shared by every replica, evicted
least recently used first past ``draft_cache_max_bytes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ffmpeg
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, func, select

from services.kit.cube_lut import CubeLut
from services.render.ffmpeg_process import run_ffmpeg
from services.render.loudness import measure_loudness
from services.render.models import DraftSegmentRow
from services.render.pipeline import BT601_TAGS, _command, _remove
from services.render.timeline.compile import Window, compile_plan
from services.render.timeline.expr import num
from services.render.timeline.fx import Loudness
from services.render.timeline.plan import Plan, Source
from services.render.timeline.validate import Limits, OutputOverrides, plan_timeline
from viarte.render.v1 import timeline_pb2 as tl

__all__ = [
    "DRAFT_MIME", "DraftCache", "DraftSegment", "draft_loudness", "draft_plan", "draft_size", "playback_window",
    "render_draft_segment",
]

# Bumped whenever the draft's encoding changes, so old cache entries are never served.
_VERSION = "draft-1"
# High profile, level 4.0: what libx264 writes with the options below (MSE wants the codec string up front).
DRAFT_MIME = 'video/mp4; codecs="avc1.640028,mp4a.40.2"'


def draft_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """The draft's picture: at most ``max_height`` lines, the canvas's aspect, even sides."""
    h = max(2, min(max_height, height) // 2 * 2)
    return max(2, round(width * h / height / 2) * 2), h


def draft_plan(timeline: tl.Timeline, sources: dict[str, Source], limits: Limits, max_height: int,
               luts: dict[str, CubeLut | str] | None = None) -> Plan:
    """The timeline planned at the draft's size, as an export with that output size would be: the
    whole graph (fits, overlays, text, keyframed positions) runs at 360p instead of composing at
    full size and scaling down afterwards."""
    w, h = draft_size(timeline.canvas.width, timeline.canvas.height, max_height)
    return plan_timeline(timeline, sources, limits, OutputOverrides(w, h), luts)


def playback_window(plan: Plan, frame: int, segment_seconds: float) -> Window:
    """The segment holding output frame ``frame``: cuts every ``segment_seconds`` on the frame grid,
    each moved back to the start of a transition it falls inside. Depends only on the transitions
    at the cuts, so the segments away from an edit keep their windows."""
    n = max(1, round(segment_seconds * plan.canvas.fps))
    total = plan.canvas.frames
    frame = min(max(frame, 0), total - 1)

    def cut(k: int) -> int:
        c = min(k * n, total)
        moved = True
        while moved:  # a transition may start inside another one's span: repeat until stable
            moved = False
            for clip in plan.clips():
                t = clip.transition_in
                if t is not None and clip.start < c < clip.start + t.frames:
                    c, moved = clip.start, True
        return c

    k = frame // n
    start = cut(k)  # never after the frame: a cut only moves back
    j = k + 1
    end = cut(j)
    while end <= frame:  # the next cut fell back, but not past this frame: it starts the segment
        start = max(start, end)
        j += 1
        end = cut(j)
    return Window(start, end)


@dataclass(frozen=True)
class DraftSegment:
    media: bytes
    window: Window
    cached: bool
    key: str
    width: int
    height: int


class DraftCache:
    """Blocking database access (call through ``run_db``); one transaction per operation."""

    def __init__(self, engine: Engine, max_bytes: int) -> None:
        self.engine = engine
        self.max_bytes = max_bytes

    def get(self, key: str) -> bytes | None:
        with Session(self.engine) as s:
            row = s.get(DraftSegmentRow, key)
            if row is None:
                return None
            data = bytes(row.data)
            row.used_us = time.time_ns() // 1000
            s.add(row)
            s.commit()
            return data

    def put(self, key: str, kind: str, data: bytes) -> None:
        try:
            with Session(self.engine) as s:
                s.add(DraftSegmentRow(key=key, kind=kind, data=data, size=len(data), used_us=time.time_ns() // 1000))
                s.commit()
        except IntegrityError:
            return  # another caller (or replica) rendered the same segment first: same bytes
        self._evict()

    def _evict(self) -> None:
        with Session(self.engine) as s:
            total = s.exec(select(func.coalesce(func.sum(DraftSegmentRow.size), 0))).one()
            if total <= self.max_bytes:
                return
            doomed: list[str] = []
            for key, size in s.exec(select(DraftSegmentRow.key, DraftSegmentRow.size).order_by(col(DraftSegmentRow.used_us))):
                if total <= self.max_bytes:
                    break
                doomed.append(key)
                total -= size
            s.exec(delete(DraftSegmentRow).where(col(DraftSegmentRow.key).in_(doomed)))
            s.commit()

    def keys(self, kind: str = "segment") -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(select(DraftSegmentRow.key).where(DraftSegmentRow.kind == kind)))


def _fingerprint(args: list[str], plan: Plan, workdir: Path, *skip: Path) -> str:
    """What makes this command's output: its arguments with the parts that change between equal
    requests replaced (presigned URLs → asset ids, the scratch folder → a placeholder), and the
    files the compiler wrote (text, LUT tables) by content."""
    urls = {c.source.location: f"asset:{c.source.asset_id}:{c.source.content_type}" for c in plan.clips() if c.source is not None}
    folder = str(workdir)

    def clean(arg: str) -> str:
        for url, name in urls.items():
            arg = arg.replace(url, name)
        return arg.replace(folder, "<work>")

    digest = hashlib.sha256(_VERSION.encode())
    digest.update(json.dumps([clean(a) for a in args]).encode())
    for path in sorted(p for p in workdir.rglob("*") if p.is_file() and p not in skip):
        digest.update(clean(str(path)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _loudness_fingerprint(plan: Plan, folder: Path, ffmpeg_binary: str) -> str | None:
    graph = compile_plan(replace(plan, loudness=None), folder)
    if graph.audio is None:
        return None
    args = list(ffmpeg.output(graph.audio, "-", f="null").compile(cmd=ffmpeg_binary))
    return "loudness-" + _fingerprint(args, plan, folder)[:55]


async def draft_loudness(plan: Plan, cache: DraftCache, workdir: Path, *, ffmpeg_binary: str = "ffmpeg") -> Loudness | None:
    """The mix's measurement the export would use (pass 1 of loudness.py), cached by the mix's graph."""
    if plan.loudness is None or not plan.has_audio:
        return None
    folder = workdir / "loudness-key"
    key = await asyncio.to_thread(_loudness_fingerprint, plan, folder, ffmpeg_binary)
    if key is None:
        return None
    known = await asyncio.to_thread(cache.get, key)
    if known is not None:
        stored = json.loads(known)
        return Loudness(**stored) if stored else None
    measured = await measure_loudness(plan, workdir, ffmpeg_binary=ffmpeg_binary)
    await asyncio.to_thread(cache.put, key, "loudness", json.dumps(asdict(measured) if measured else None).encode())
    return measured


def _draft_args(plan: Plan, window: Window, workdir: Path, out: Path, loudness: Loudness | None, height: int,
                ffmpeg_binary: str, fast_audio: bool = True) -> tuple[list[str], str, int, int]:
    graph = compile_plan(plan, workdir, window=window, audio=True, loudness=loudness, linear_gain_as_volume=fast_audio)
    canvas = plan.canvas
    w, h = draft_size(canvas.width, canvas.height, height)
    # Frame k of the window is timeline frame start + k: stamped exactly so (an input's own start
    # offset, e.g. its AAC priming, would otherwise shift every frame a fraction of a frame late).
    video = graph.video.filter("setpts", f"N/({graph.fps:g}*TB)").filter("scale", w, h)
    seconds = num(graph.frames / graph.fps)
    # Silence where the window has no sound: every segment must have the same tracks for MSE.
    sound = graph.audio if graph.audio is not None else ffmpeg.input(
        "anullsrc=r=48000:cl=stereo", f="lavfi", t=seconds).audio
    node = ffmpeg.output(
        video, sound, str(out), f="mp4", vcodec="libx264", preset="ultrafast", crf=26, pix_fmt="yuv420p",
        r=f"{graph.fps:g}", g=graph.frames, acodec="aac", ar=48000, ac=2, t=seconds,
        movflags="frag_keyframe+empty_moov+default_base_moof",
        # A fragmented MP4 has no edit list for AAC's priming: the muxer would push the video
        # 1024 samples (21 ms) late to keep the sound non-negative. Leave the timestamps as they are.
        avoid_negative_ts="disabled",
        # Say which matrix the YUV is in (BT.601, what ffmpeg's RGB conversions use): Chromium
        # decodes untagged video as BT.709, and saturated colours came out ~9 levels off.
        **BT601_TAGS, **{"b:a": "128k", "profile:v": "high", "level": "4.0"},
        # AAC's fast coder: half the audio's CPU of the default (twoloop), inaudible at 128 kb/s in a draft.
        **({"aac_coder": "fast"} if fast_audio else {}),
    )
    key = _fingerprint(list(node.compile(cmd=ffmpeg_binary)), plan, workdir, out)
    return _command(node, ffmpeg_binary, workdir, "-y"), key, w, h


async def render_draft_segment(
    plan: Plan, time_seconds: float, cache: DraftCache, workdir: Path, *, segment_seconds: float = 2.0,
    height: int = 360, ffmpeg_binary: str = "ffmpeg", limit_seconds: float = 60.0, gate: asyncio.Semaphore | None = None,
    fast_audio: bool = True,
) -> DraftSegment:
    """The draft segment holding ``time_seconds``: from the cache, or rendered and cached.
    ``fast_audio`` (off only to measure the old way): loudnorm's linear gain as ``volume`` and AAC's
    fast coder, the sound's share of the segment's CPU halved."""
    window = playback_window(plan, int(time_seconds * plan.canvas.fps + 1e-6), segment_seconds)
    loudness = await draft_loudness(plan, cache, workdir, ffmpeg_binary=ffmpeg_binary)
    # Its own folder, beside the caller's scratch folder (a render may outlive its caller, below);
    # the fingerprint reads every file the compiler wrote there, and only those.
    folder = Path(tempfile.mkdtemp(prefix="segment-", dir=workdir.parent))
    out = folder / "segment.mp4"
    try:
        args, key, w, h = await asyncio.to_thread(_draft_args, plan, window, folder, out, loudness, height, ffmpeg_binary,
                                                fast_audio)
        known = await asyncio.to_thread(cache.get, key)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if known is not None or key in _RENDERING:
        shutil.rmtree(folder, ignore_errors=True)
    if known is not None:
        return DraftSegment(known, window, True, key, w, h)
    # The same segment asked for twice at once (the editor's warm-up and its player) is rendered
    # once here (across replicas the database's primary key keeps one copy). The render runs as its
    # own task: a caller that goes away (the warm-up aborted when Play starts) does not kill the
    # ffmpeg the next caller is waiting for; it finishes and fills the cache.
    task = _RENDERING.get(key)
    fresh = task is None
    if task is None:
        task = asyncio.ensure_future(_render_and_cache(args, out, key, cache, limit_seconds, gate))
        _RENDERING[key] = task

        def finished(_: object) -> None:
            _RENDERING.pop(key, None)
            shutil.rmtree(folder, ignore_errors=True)

        task.add_done_callback(finished)
    media = await asyncio.shield(task)
    return DraftSegment(media, window, not fresh, key, w, h)


# Renders in flight in this process, by key (only to share one render between concurrent callers).
_RENDERING: dict[str, asyncio.Future[bytes]] = {}


async def _render_and_cache(args: list[str], out: Path, key: str, cache: DraftCache, limit_seconds: float,
                            gate: asyncio.Semaphore | None) -> bytes:
    media = await _render(args, out, limit_seconds, gate)
    await asyncio.to_thread(cache.put, key, "segment", media)
    return media


async def _render(args: list[str], out: Path, limit_seconds: float, gate: asyncio.Semaphore | None) -> bytes:
    try:
        if gate is not None:
            async with gate:
                await run_ffmpeg(args, limit_seconds=limit_seconds)
        else:
            await run_ffmpeg(args, limit_seconds=limit_seconds)
        return await asyncio.to_thread(out.read_bytes)
    finally:
        await asyncio.to_thread(_remove, [out])
