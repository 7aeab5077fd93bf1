"""Video stabilisation, vidstab's two passes.

Pass 1 (``vidstabdetect``) analyses a source's motion once and writes its transforms file into a
cache folder, keyed by the source (its asset id; assets are immutable), so every render and
preview of the asset reuses it. Pass 2 (``vidstabtransform``) is part of the one graph: a
stabilised clip's input is then decoded from the source's start (not seeked), so the frame
numbers vidstab counts match the analysis whatever window of the timeline is compiled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import ffmpeg

from services.render.ffmpeg_process import run_ffmpeg
from services.render.timeline.plan import Plan, Source

__all__ = ["prepare_stabilization", "source_key"]

_LOCKS: dict[str, asyncio.Lock] = {}


def source_key(source: Source) -> str:
    """The cache key: the asset id, or (an asset without one, in tests) a hash of where it is."""
    return source.asset_id or hashlib.sha256(source.location.encode()).hexdigest()[:32]


async def prepare_stabilization(plan: Plan, cache_dir: Path, *, ffmpeg_binary: str = "ffmpeg", cancel: asyncio.Event | None = None) -> Plan:
    """The plan with the transforms file of every stabilised clip's source (analysed now if the
    cache does not hold it yet)."""
    wanted = {source_key(c.source): c.source for c in plan.clips() if c.filters.stabilize and c.source is not None}
    if not wanted:
        return plan
    await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for key, source in wanted.items():
        path = cache_dir / f"{key}.trf"
        async with _LOCKS.setdefault(key, asyncio.Lock()):
            if not await asyncio.to_thread(path.exists):
                await _detect(source, path, ffmpeg_binary, cancel)
        files[key] = str(path)
    return replace(plan, stabilization=files)


async def _detect(source: Source, path: Path, ffmpeg_binary: str, cancel: asyncio.Event | None) -> None:
    from services.render.pipeline import _command  # the one place graphs become commands

    inp = source.input()
    partial = path.with_suffix(f".{os.getpid()}.part")
    stream = ffmpeg.input(inp.location, **inp.kwargs()).video.filter("vidstabdetect", result=str(partial), shakiness=8, accuracy=15)
    args = _command(ffmpeg.output(stream, "-", f="null"), ffmpeg_binary, path.parent, "-y")
    try:
        await run_ffmpeg(args, cancel=cancel)
        await asyncio.to_thread(partial.replace, path)  # whole or nothing: a killed analysis leaves no half file
    finally:
        await asyncio.to_thread(_cleanup, partial, args)


def _cleanup(partial: Path, args: list[str]) -> None:
    partial.unlink(missing_ok=True)
    from services.render.pipeline import _graph_scripts

    for script in _graph_scripts(args):
        script.unlink(missing_ok=True)
