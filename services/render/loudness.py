"""Loudness normalisation of a timeline's mix (EBU R128), two passes.

Pass 1 renders only the sound of the one graph through ``ebur128`` (true peak on) and reads the
integrated loudness, loudness range and true peak it reports. Pass 2 is the render itself, with
``loudnorm`` in linear mode fed those measurements: one gain takes the whole mix to the target
(within a fraction of an LU, unlike single-pass loudnorm, whose dynamic mode hunts on short
clips); loudnorm falls back to its dynamic mode only when the gain would push the true peak
over -1 dBTP. Pass 1 reads the sources' audio only (no picture is decoded).
"""

from __future__ import annotations

import asyncio
import math
import shutil
from dataclasses import replace
from pathlib import Path

import ffmpeg

from services.render.ffmpeg_process import run_ffmpeg
from services.render.timeline.compile import CompiledGraph, compile_plan
from services.render.timeline.fx import TRUE_PEAK, Loudness
from services.render.timeline.plan import Plan

__all__ = ["TRUE_PEAK", "Loudness", "compile_normalised", "measure_loudness", "parse_ebur128"]

# Quieter than this is silence (ebur128's absolute gate): nothing to normalise.
_SILENCE = -69.0


def parse_ebur128(text: str) -> Loudness | None:
    """The last integrated loudness and LRA, and the highest true peak, of ametadata's print."""
    integrated = lra = None
    peak = -math.inf
    for line in text.splitlines():
        key, _, value = line.partition("=")
        try:
            number = float(value)
        except ValueError:
            continue
        if key == "lavfi.r128.I":
            integrated = number
        elif key == "lavfi.r128.LRA":
            lra = number
        elif key.startswith("lavfi.r128.true_peaks_ch") and number > 0:
            peak = max(peak, 20 * math.log10(number))
    if integrated is None or lra is None or not math.isfinite(integrated):
        return None
    return Loudness(integrated, lra, peak if math.isfinite(peak) else -99.0)


async def measure_loudness(plan: Plan, workdir: Path, *, ffmpeg_binary: str = "ffmpeg", cancel: asyncio.Event | None = None) -> Loudness | None:
    """Pass 1: the mix as the render would make it, measured (None: no sound, or silence)."""
    from services.render.pipeline import _command  # the one place graphs become commands

    folder = workdir / "loudness"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        graph = await asyncio.to_thread(compile_plan, replace(plan, loudness=None), folder)
        if graph.audio is None:
            return None
        log = folder / "ebur128.txt"
        sound = graph.audio.filter("ebur128", peak="true", metadata=1).filter("ametadata", mode="print", file=str(log))
        args = _command(ffmpeg.output(sound, "-", f="null"), ffmpeg_binary, folder, "-y")
        await run_ffmpeg(args, cancel=cancel)
        measured = parse_ebur128(await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace"))
    finally:
        # Its files (graph, text, the log) go however the pass ends: a cancelled job leaves nothing.
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return measured if measured is not None and measured.integrated > _SILENCE else None


async def compile_normalised(plan: Plan, workdir: Path, *, ffmpeg_binary: str = "ffmpeg", cancel: asyncio.Event | None = None) -> CompiledGraph:
    """The whole plan's graph, its mix normalised to ``plan.loudness`` when that is set."""
    measured = None
    if plan.loudness is not None and plan.has_audio:
        measured = await measure_loudness(plan, workdir, ffmpeg_binary=ffmpeg_binary, cancel=cancel)
    return await asyncio.to_thread(compile_plan, plan, workdir, loudness=measured)
