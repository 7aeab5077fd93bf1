"""Timeline plan → MP4 (+ poster JPEG), and single preview frames, through ffmpeg."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg

from services.kit.media_input import media_input
from services.render.encoder import EncoderOptions
from services.render.ffmpeg_process import ProgressCallback, run_ffmpeg
from services.render.timeline.compile import CompiledGraph, Window, compile_plan
from services.render.timeline.plan import Plan

__all__ = ["BT601_TAGS", "RenderOutput", "extract_poster", "render_args", "render_frame", "render_plan", "scratch_dir"]

_GLOBAL = ("-hide_banner", "-nostdin", "-loglevel", "error")
# The matrix, primaries, transfer and range of what the graph makes: ffmpeg's RGB<->YUV conversions
# (colour sources, text, looks, transitions in 4:4:4) use BT.601 in limited range. Untagged H.264 is
# decoded by browsers as BT.709, which moves saturated colours ~9 levels: every output says what it is.
BT601_TAGS: dict[str, str] = {"colorspace": "bt470bg", "color_primaries": "smpte170m", "color_trc": "smpte170m", "color_range": "tv"}
_POSTER_QUALITY = 3  # JPEG qscale (2 best .. 31)


@dataclass(frozen=True)
class RenderOutput:
    video: Path
    poster: Path
    duration: float
    width: int
    height: int
    fps: float
    frames: int
    encoder: str
    has_audio: bool


def render_args(
    graph: CompiledGraph, out: Path, encoding: EncoderOptions, *, ffmpeg_binary: str = "ffmpeg", workdir: Path,
    poster: Path | None = None,
) -> list[str]:
    """The one ffmpeg command: all inputs, one filter graph (read from a file in ``workdir``),
    H.264/AAC MP4 with faststart; with ``poster``, also that JPEG of the frame at `poster_time`,
    taken from the same decode (a second output: no second ffmpeg reading the MP4 back). The MP4's
    bytes are the same either way: its encoder gets the same frames."""
    video = graph.video
    still: Any = None
    if poster is not None:
        split = video.split()
        # end_frame=1: the branch stops after its one frame (vframes alone would still push every
        # later frame through the trim: 2-3x the CPU of a long render).
        video, still = split[0], split[1].trim(start=poster_time(graph.duration)).trim(end_frame=1)
    streams: list[Any] = [video] + ([graph.audio] if graph.audio is not None else [])
    options: dict[str, Any] = {
        "vcodec": encoding.encoder,
        "pix_fmt": "yuv420p",
        "r": f"{graph.fps:g}",
        "movflags": "+faststart",
        **BT601_TAGS,
        **encoding.options,
    }
    if graph.audio is not None:
        options.update({"acodec": "aac", "b:a": "192k", "ar": 48000})
    node = ffmpeg.output(*streams, str(out), **options)
    if still is not None:
        # The MP4 stays the first output: ffmpeg's progress reports count its frames.
        node = ffmpeg.merge_outputs(node, ffmpeg.output(still, str(poster), vframes=1, **{"q:v": _POSTER_QUALITY}))
    return _command(node, ffmpeg_binary, workdir, "-y", "-progress", "pipe:1", "-nostats")


def poster_time(duration: float) -> float:
    """The poster's frame: 1 s in (past a fade from black), or the middle of a shorter video."""
    return min(1.0, duration / 2)


async def render_plan(
    plan: Plan,
    workdir: Path,
    encoding: EncoderOptions,
    *,
    ffmpeg_binary: str = "ffmpeg",
    on_progress: ProgressCallback | None = None,
    cancel: asyncio.Event | None = None,
    output_name: str = "render.mp4",
) -> RenderOutput:
    """Renders the whole plan into ``workdir`` (the caller removes the folder)."""
    from services.render.loudness import compile_normalised  # it builds commands with this module

    # Loudness pass first when the mix is normalised; compiling writes files: off the event loop.
    graph = await compile_normalised(plan, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel)
    video = workdir / output_name
    poster = workdir / "poster.jpg"
    args = render_args(graph, video, encoding, ffmpeg_binary=ffmpeg_binary, workdir=workdir, poster=poster)
    try:
        await run_ffmpeg(args, total_frames=graph.frames, on_progress=on_progress, cancel=cancel)
        if not poster.exists():  # the graph had no frame from poster_time on: read the MP4 back, as before
            await extract_poster(video, graph.duration, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel)
    except BaseException:
        # A killed or failed ffmpeg leaves a partial file: nothing half-made survives.
        _remove([video, poster])
        raise
    finally:
        _remove([*graph.text_files, *_graph_scripts(args)])
    return RenderOutput(
        video=video,
        poster=poster,
        duration=graph.duration,
        width=graph.width,
        height=graph.height,
        fps=graph.fps,
        frames=graph.frames,
        encoder=encoding.encoder,
        has_audio=graph.audio is not None,
    )


async def extract_poster(video: Path, duration: float, workdir: Path, *, ffmpeg_binary: str = "ffmpeg",
                         cancel: asyncio.Event | None = None) -> Path:
    """``workdir/poster.jpg``: the rendered video's frame at 1 s (or its middle when shorter)."""
    poster = workdir / "poster.jpg"
    at = poster_time(duration)
    await run_ffmpeg(
        [ffmpeg_binary, *_GLOBAL, "-y", "-ss", f"{at:.3f}", *media_input("video/mp4", str(video)).ffmpeg_args(), "-frames:v", "1",
         "-q:v", str(_POSTER_QUALITY), str(poster)],
        cancel=cancel,
    )
    return poster


async def render_frame(
    plan: Plan,
    time_seconds: float,
    workdir: Path,
    *,
    max_width: int = 0,
    ffmpeg_binary: str = "ffmpeg",
    limit_seconds: float = 30.0,
) -> tuple[bytes, int, int]:
    """One JPEG of the timeline at ``time_seconds``: only the clips under the playhead are decoded,
    each seeked to its frame (a transition is decoded from its start)."""
    frame = min(max(round(time_seconds * plan.canvas.fps), 0), plan.canvas.frames - 1)
    graph = await asyncio.to_thread(compile_plan, plan, workdir, window=Window(frame, frame + 1), audio=False)
    video = graph.video
    width, height = graph.width, graph.height
    if max_width and max_width < width:
        height = max(2, round(height * max_width / width / 2) * 2)
        width = max_width - max_width % 2
        video = video.filter("scale", width, height)
    node = ffmpeg.output(video, "pipe:1", vframes=1, format="image2pipe", vcodec="mjpeg", **{"q:v": 3})
    args = _command(node, ffmpeg_binary, workdir)
    try:
        jpeg = await run_ffmpeg(args, limit_seconds=limit_seconds)
    finally:
        await asyncio.to_thread(_remove, graph.text_files)
    return jpeg, width, height


def _command(node: Any, ffmpeg_binary: str, workdir: Path, *extra: str) -> list[str]:
    """ffmpeg-python puts global options last; ffmpeg wants them before the inputs.

    The filter graph goes to ffmpeg in a file: a legal timeline (keyframes become expression
    terms) can make it longer than the kernel's limit for one argument / all of them (exec
    fails with "Argument list too long"), and a file has no such limit."""
    args = list(node.compile(cmd=ffmpeg_binary))
    if "-filter_complex" in args:
        at = args.index("-filter_complex")
        script = Path(tempfile.mkstemp(prefix="graph-", suffix=".txt", dir=workdir)[1])
        script.write_text(args[at + 1], encoding="utf-8")
        args[at : at + 2] = [_script_option(ffmpeg_binary), str(script)]
    return [args[0], *_GLOBAL, *extra, *args[1:]]


def _graph_scripts(args: list[str]) -> list[Path]:
    """The filter-graph file `_command` wrote for these arguments (none for a graph-less command)."""
    return [Path(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg in ("-/filter_complex", "-filter_complex_script")]


@lru_cache(maxsize=8)
def _script_option(ffmpeg_binary: str) -> str:
    """ffmpeg 7 reads any option's value from a file with ``-/option``; older ones only know
    ``-filter_complex_script`` (deprecated in 7, so newer binaries get the new spelling)."""
    try:
        done = subprocess.run([ffmpeg_binary, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30, check=False)
        match = re.match(r"ffmpeg version n?(\d+)\.", done.stdout)
    except (OSError, subprocess.TimeoutExpired):
        match = None
    return "-/filter_complex" if match is not None and int(match.group(1)) >= 7 else "-filter_complex_script"


@contextmanager
def scratch_dir(root: Path, prefix: str = "job-") -> Iterator[Path]:
    """A private folder under ``root`` that is removed however the work ends."""
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
