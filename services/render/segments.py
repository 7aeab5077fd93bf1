"""One render split over several workers (issue 15): the timeline is cut into segments at frame
boundaries, each segment is rendered on its own (video only, so it starts with a keyframe: a fresh
encode opens with an IDR frame), the sound is rendered once for the whole timeline, and the parts are
joined with the concat demuxer by stream copy (no second encode, no audio seams).

Cuts never fall inside a transition (xfade needs both of its sides); the window compilation is the
same one ``RenderFrame`` uses, so a segment's frames are the whole render's frames up to the
encoder's noise (different GOP starts and rate-control history: measured in tests/render).

Hostile-media rules stay: the concat list is ours (relative names, ``-safe 1``, ``-protocol_whitelist
file``, forced demuxers), it names only files we wrote, never a URL.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from services.kit.media_input import MediaInput, media_input
from services.render.encoder import EncoderOptions
from services.render.ffmpeg_process import FFmpegProgress, ProgressCallback, run_ffmpeg
from services.render.loudness import compile_normalised
from services.render.pipeline import _GLOBAL, RenderOutput, _command, _remove, extract_poster
from services.render.timeline.compile import Window, compile_plan
from services.render.timeline.plan import Plan

__all__ = ["SegmentRunner", "all_or_none", "join_segments", "render_audio", "render_split", "render_window", "segment_windows"]

# Renders one window of the plan into the given file; returns the frames it wrote. Progress goes
# to the callback (frames of this segment so far).
SegmentRunner = Callable[[int, Window, Path, Callable[[int], None]], Awaitable[int]]


def segment_windows(plan: Plan, parts: int) -> list[Window]:
    """[start, end) frame windows covering the timeline in ``parts`` near-equal pieces; a cut inside
    a transition moves back to the transition's start. Empty pieces are dropped."""
    total = plan.canvas.frames
    parts = max(1, min(parts, total))
    cuts = []
    for i in range(1, parts):
        cut = round(total * i / parts)
        moved = True
        while moved:  # a transition may start inside another one's span: repeat until stable
            moved = False
            for clip in plan.clips():
                t = clip.transition_in
                if t is not None and clip.start < cut < clip.start + t.frames:
                    cut, moved = clip.start, True
        cuts.append(cut)
    edges = sorted({0, *cuts, total})
    return [Window(a, b) for a, b in itertools.pairwise(edges) if b > a]


@dataclass(frozen=True)
class _Encoded:
    args: list[str]
    frames: int
    text_files: list[Path]


def _window_args(plan: Plan, window: Window, out: Path, encoding: EncoderOptions, ffmpeg_binary: str, workdir: Path) -> _Encoded:
    from services.render.pipeline import render_args

    graph = compile_plan(plan, workdir, window=window, audio=False)
    if graph.audio is not None:  # pragma: no cover - compile_plan(audio=False) never builds one
        graph.audio = None
    return _Encoded(render_args(graph, out, encoding, ffmpeg_binary=ffmpeg_binary, workdir=workdir), graph.frames,
                    graph.text_files)


async def render_window(plan: Plan, window: Window, out: Path, encoding: EncoderOptions, *, ffmpeg_binary: str = "ffmpeg",
                        on_frames: Callable[[int], None] | None = None, cancel: asyncio.Event | None = None) -> int:
    """Frames [window.start, window.end) of the plan, video only, into ``out`` (MP4)."""
    # Its own folder for the graph and text files: segments render side by side.
    workdir = out.parent / f"{out.stem}-graph"
    encoded = await asyncio.to_thread(_window_args, plan, window, out, encoding, ffmpeg_binary, workdir)

    def progress(p: FFmpegProgress) -> None:
        if on_frames is not None:
            on_frames(min(p.frame, encoded.frames))

    try:
        await run_ffmpeg(encoded.args, total_frames=encoded.frames, on_progress=progress, cancel=cancel)
    except BaseException:
        _remove([out])
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return encoded.frames


async def render_audio(plan: Plan, workdir: Path, *, ffmpeg_binary: str = "ffmpeg", cancel: asyncio.Event | None = None) -> Path | None:
    """The whole timeline's sound as AAC in an M4A (None when the timeline has none): only the
    audio part of the one graph reaches ffmpeg (ffmpeg-python keeps what the output needs)."""
    out = workdir / "audio.m4a"
    workdir = workdir / "audio-graph"  # its own folder: segments render side by side
    workdir.mkdir(parents=True, exist_ok=True)
    graph = await compile_normalised(plan, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel)
    if graph.audio is None:
        shutil.rmtree(workdir, ignore_errors=True)
        return None
    node = ffmpeg.output(graph.audio, str(out), acodec="aac", ar=48000, **{"b:a": "192k"})
    args = _command(node, ffmpeg_binary, workdir, "-y")
    try:
        await run_ffmpeg(args, cancel=cancel)
    except BaseException:
        _remove([out])
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def join_segments(parts: list[Path], audio: MediaInput | None, out: Path, *, durations: list[float] | None = None,
                        ffmpeg_binary: str = "ffmpeg", cancel: asyncio.Event | None = None) -> None:
    """Concatenates the segments (same folder as the list) by stream copy and muxes in the sound
    of ``audio`` (its first audio stream, if it has one), also by stream copy."""
    folder = out.parent
    listing = folder / "segments.txt"
    for part in parts:
        if part.parent != folder or not part.name.replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"a segment must be a plainly named file next to the output: {part}")
    # Relative plain names: allowed under -safe 1 (no absolute paths, no protocols, no "..").
    # ``durations`` (frames / fps of each part): the next part starts exactly there; otherwise the
    # container's duration (which may round up) leaves a gap at every join and the rate drifts.
    lengths = durations or [0.0] * len(parts)
    listing.write_text("ffconcat version 1.0\n" + "".join(
        f"file '{p.name}'\n" + (f"duration {d:.9f}\n" if d > 0 else "") for p, d in zip(parts, lengths, strict=True)),
        encoding="utf-8")
    sound: list[str] = [*audio.ffmpeg_args(), "-map", "1:a:0?"] if audio is not None else []
    args = [ffmpeg_binary, *_GLOBAL, "-y", "-f", "concat", "-safe", "1", "-protocol_whitelist", "file",
            "-i", f"file:{listing}", *sound, "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(out)]
    try:
        await run_ffmpeg(args, cancel=cancel)
    except BaseException:
        _remove([out])
        raise
    finally:
        _remove([listing])


async def render_split(plan: Plan, workdir: Path, encoding: EncoderOptions, parts: int, run_segment: SegmentRunner, *,
                       ffmpeg_binary: str = "ffmpeg", on_progress: ProgressCallback | None = None,
                       cancel: asyncio.Event | None = None, output_name: str = "render.mp4") -> RenderOutput:
    """The plan in ``parts`` segments (each through ``run_segment``, concurrently) plus its sound,
    joined into ``workdir/output_name`` with a poster, as ``render_plan`` would have made it."""
    windows = segment_windows(plan, parts)
    files = [workdir / f"segment-{i:03d}.mp4" for i in range(len(windows))]
    done = [0] * len(windows)
    total = plan.canvas.frames
    loop = asyncio.get_running_loop()
    started = loop.time()

    def frames(i: int) -> Callable[[int], None]:
        def report(n: int) -> None:
            done[i] = n
            if on_progress is not None:
                elapsed = loop.time() - started
                fps = sum(done) / elapsed if elapsed > 0 else 0.0
                eta = (total - sum(done)) / fps if fps > 0 else None
                on_progress(FFmpegProgress(sum(done), total, fps, 0.0, eta))  # handlers' callbacks are plain
        return report

    try:
        results = await all_or_none([
            render_audio(plan, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel),
            *(run_segment(i, w, f, frames(i)) for i, (w, f) in enumerate(zip(windows, files, strict=True))),
        ])
        audio: Path | None = results[0]
        video = workdir / output_name
        sound = media_input("audio/mp4", str(audio)) if audio is not None else None
        await join_segments(files, sound, video, durations=[w.frames / plan.canvas.fps for w in windows],
                            ffmpeg_binary=ffmpeg_binary, cancel=cancel)
        poster = await extract_poster(video, plan.canvas.duration, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel)
    finally:
        _remove([*files, workdir / "audio.m4a"])
    return RenderOutput(video=video, poster=poster, duration=plan.canvas.duration, width=plan.canvas.width,
                        height=plan.canvas.height, fps=plan.canvas.fps, frames=total, encoder=encoding.encoder,
                        has_audio=audio is not None)


async def all_or_none(works: list[Awaitable[Any]]) -> list[Any]:
    """All results in order; the first failure stops the others (their ffmpegs are killed) and is
    raised as it is (FFmpegCancelled, FFmpegError, RetryableJobError ...)."""
    tasks = [asyncio.ensure_future(w) for w in works]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
