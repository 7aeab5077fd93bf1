"""ProposeEdit (issue 18's smart edit, first cut): clips cut into shots, laid over the music on its beats.

Every clip and the music are analysed (AnalyzeMedia, cached per asset). A clip's shots are the
spans between its scene changes (a hard cut's time; a dissolve's whole span is left out). The edit takes
shots in the clips' order and gives each one the time to a beat of the music: the first beat
at least `min_shot` after the previous cut that still fits in the shot, and for shots that can
run at least `downbeat_min` the first such downbeat instead (longer shots land on the bar). A
shot too short for even the next beat is skipped. The picture of a shot starts at the shot's
start, so no scene boundary is ever inside a clip of the edit.

Options: ``transitions`` picks a transition per cut from the two shots (``shotlook``: a slide
following a pan, a dissolve between look-alike shots, else a hard cut), centred on the beat and
only where both shots have the spare picture (inside the shot) for half of it each;
``match_colors`` grades every shot toward the first one with a stored ``.cube`` LUT.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.kit.cube_lut import CubeLut
from services.kit.errors import FieldViolation, ServiceError, Violations
from services.kit.media_input import MediaInput, media_input
from services.render import shotlook
from services.render.analyze import Analyzed, Analyzer
from services.render.reasons import Reason
from viarte.render.v1 import render_pb2
from viarte.render.v1 import timeline_pb2 as tl

__all__ = ["propose_edit"]

MAX_CLIPS = 50
LUT_TYPE = "application/x-cube-lut"
# Shots are cut this far inside their scene boundaries: the boundary frame itself may belong to
# either side (a cut's time is the first frame of the next shot, a dissolve spans both).
_MARGIN = 0.05


@dataclass(frozen=True)
class Shot:
    clip: int
    start: float
    end: float


def _check(request: render_pb2.ProposeEditRequest) -> tuple[float, float]:
    v = Violations()
    v.check(1 <= len(request.clip_asset_ids) <= MAX_CLIPS, "clip_asset_ids", f"1 to {MAX_CLIPS} clips")
    v.check(bool(request.music_asset_id), "music_asset_id", "is required")
    d = request.duration_seconds
    v.check(math.isfinite(d) and 0 <= d <= 3600, "duration_seconds", "must be in [0, 3600]")
    min_shot = request.min_shot_seconds if request.HasField("min_shot_seconds") else 1.0
    downbeat = request.downbeat_min_seconds if request.HasField("downbeat_min_seconds") else 2.0
    v.check(math.isfinite(min_shot) and 0.2 <= min_shot <= 10, "min_shot_seconds", "must be in [0.2, 10]")
    v.check(math.isfinite(downbeat) and 0 <= downbeat <= 60, "downbeat_min_seconds", "must be in [0, 60]")
    c = request.canvas
    v.check(c.width >= 0 and c.height >= 0 and c.width % 2 == 0 and c.height % 2 == 0, "canvas", "width/height even, or 0")
    v.check(math.isfinite(c.fps) and 0 <= c.fps <= 120, "canvas.fps", "must be in [0, 120]")
    v.raise_if_any(Reason.INVALID_ARGUMENT)
    return min_shot, downbeat


def shots_of(index: int, analysis: render_pb2.MediaAnalysis) -> list[Shot]:
    """The spans between scene changes; a dissolve's whole span belongs to no shot."""
    out, start = [], 0.0
    for change in sorted(analysis.scene_changes, key=lambda c: c.time_seconds):
        end = (change.start_seconds or change.time_seconds) - _MARGIN
        if end - start > 0:
            out.append(Shot(index, start, end))
        start = max(start, (change.end_seconds or change.time_seconds) + _MARGIN)
    if analysis.duration_seconds - _MARGIN - start > 0:
        out.append(Shot(index, start, analysis.duration_seconds - _MARGIN))
    return out


def plan_cuts(shots: list[Shot], beats: list[float], downbeats: list[float], limit: float, min_shot: float,
              downbeat_min: float) -> list[tuple[Shot, float, float]]:
    """(shot, edit start, edit end) for each used shot; every end is a beat."""
    placed: list[tuple[Shot, float, float]] = []
    now = 0.0
    for shot in shots:
        room = min(shot.end - shot.start, limit - now)
        candidates = [t for t in beats[bisect.bisect_left(beats, now + min_shot - 1e-6):] if t - now <= room + 1e-9]
        if not candidates:
            continue
        end = candidates[0]
        on_bar = [t for t in downbeats if t in candidates]
        if room >= downbeat_min and on_bar:
            end = on_bar[0]
        placed.append((shot, now, end))
        now = end
    return placed


# transitions and match_colors grab 3 small frames per cut or shot (ffmpeg runs, bounded in number
# by the server's Analyzer.grab_slots at once): an edit with more shots than this is refused for them.
LOOKS_MAX_SHOTS = 200


async def propose_edit(analyzer: Analyzer, owner: str, request: render_pb2.ProposeEditRequest) -> render_pb2.ProposeEditResponse:
    min_shot, downbeat_min = _check(request)
    ids = list(request.clip_asset_ids)
    found = await asyncio.gather(
        *(analyzer.analyze_source(owner, a, f"clip_asset_ids[{i}]") for i, a in enumerate(ids)),
        analyzer.analyze_source(owner, request.music_asset_id, "music_asset_id"),
    )
    sources = found[:-1]
    clips, music = [s.response.analysis for s in sources], found[-1].response.analysis
    for i, a in enumerate(clips):
        if not a.has_video:
            raise _refused(f"clip_asset_ids[{i}]", "is not a video")
    beats = sorted(music.beat_seconds)
    if not music.has_audio or len(beats) < 2:
        raise _refused("music_asset_id", "has no beat to cut on")
    shots = [s for i, a in enumerate(clips) for s in shots_of(i, a)]
    limit = request.duration_seconds or music.duration_seconds
    placed = plan_cuts(shots, beats, sorted(music.downbeat_seconds), limit, min_shot, downbeat_min)
    if not placed:
        raise _refused("clip_asset_ids", "no shot is long enough for a beat of the music")
    looked = "transitions" if request.transitions else "match_colors" if request.match_colors else ""
    if looked and len(placed) > LOOKS_MAX_SHOTS:  # a few ffmpeg frame grabs per shot: bounded per request
        raise _refused(looked, f"is limited to edits of at most {LOOKS_MAX_SHOTS} shots ({len(placed)} placed)")
    # The sources were resolved and probed once, by the analysis: their URLs and sizes are reused.
    urls = {shot.clip: _input(sources[shot.clip]) for shot, _, _ in placed}
    first = sources[placed[0][0].clip].info
    c = request.canvas
    width, height = c.width or _even(first.width), c.height or _even(first.height)
    fps = c.fps or 30.0
    total = placed[-1][2]
    looks = _Looks(analyzer, urls)
    kinds = await looks.transitions(placed, min(0.5, min_shot / 2), fps) if request.transitions else [("", 0.0)] * len(placed)
    luts = await looks.matched(owner, placed) if request.match_colors else [""] * len(placed)
    timeline = tl.Timeline(canvas=tl.Canvas(width=width, height=height, fps=fps,
                                            background_color=c.background_color or "#000000", duration_seconds=total))
    video = timeline.tracks.add(id="video", kind=tl.TRACK_KIND_VIDEO, name="Edit")
    for i, (shot, start, end) in enumerate(placed):
        name, d = kinds[i]
        tail = kinds[i + 1][1] / 2 if i + 1 < len(placed) else 0.0
        clip = video.clips.add(asset_id=ids[shot.clip], start_seconds=start - d / 2, source_start_seconds=shot.start,
                               source_end_seconds=shot.start + (end - start) + d / 2 + tail, volume=0.0)
        if d > 0:
            clip.transition_in.CopyFrom(tl.Transition(name=name, duration_seconds=d))
        if luts[i]:
            clip.filters.lut_asset_id = luts[i]
    sound = timeline.tracks.add(id="music", kind=tl.TRACK_KIND_AUDIO, name="Music")
    sound.clips.add(asset_id=request.music_asset_id, start_seconds=0, source_end_seconds=total)
    return render_pb2.ProposeEditResponse(timeline=timeline, cut_seconds=[end for _, _, end in placed[:-1]],
                                          lut_asset_ids=list(dict.fromkeys(x for x in luts if x)))


def _input(source: Analyzed) -> MediaInput:
    return media_input(source.resolved.asset.content_type, source.resolved.url, rw_timeout_seconds=30)


class _Looks:
    """The frames of the placed shots that the options look at (grabbed once each, a few at a time)."""

    def __init__(self, analyzer: Analyzer, urls: dict[int, MediaInput]) -> None:
        self.ctx = analyzer.ctx
        self.urls = urls
        self._slots = analyzer.grab_slots  # the server's: concurrent requests share the bound

    async def frame(self, shot: Shot, t: float) -> np.ndarray:
        async with self._slots:
            got = await shotlook.grab_frame(self.ctx.config.ffmpeg_binary, self.urls[shot.clip], t)
        if got is None:
            field = f"clip_asset_ids[{shot.clip}]"
            raise ServiceError.invalid_argument(Reason.ANALYSIS_FAILED, "a frame of a clip could not be decoded",
                                                violations=[FieldViolation(field, f"no frame decodes at {t:.3f} s")],
                                                metadata={"time_seconds": f"{t:.3f}"})
        return got

    async def transitions(self, placed: list[tuple[Shot, float, float]], longest: float, fps: float) -> list[tuple[str, float]]:
        """(xfade name, duration) into each placed shot; ("", 0) = a hard cut."""
        d = math.floor(longest * fps) / fps  # whole frames, so the overlap is exact on the grid
        slack = [shot.end - shot.start - (end - start) for shot, start, end in placed]
        out: list[tuple[str, float]] = [("", 0.0)]
        for i in range(1, len(placed)):
            a, b = placed[i - 1][0], placed[i][0]
            a_end = a.start + (placed[i - 1][2] - placed[i - 1][1])  # where A's used picture ends in its source
            if d <= 0 or slack[i - 1] < d / 2 or slack[i] < d:  # B keeps d/2 for its own way out
                out.append(("", 0.0))
                continue
            near, last, first = await asyncio.gather(
                self.frame(a, a_end - 0.25), self.frame(a, a_end - 0.05), self.frame(b, b.start + 0.05))
            name = shotlook.choose_transition(shotlook.motion(near, last, 0.2), last, first)
            if name is None:
                out.append(("", 0.0))
                continue
            slack[i - 1] -= d / 2
            slack[i] -= d / 2
            out.append((name, d))
        return out

    async def matched(self, owner: str, placed: list[tuple[Shot, float, float]]) -> list[str]:
        """The LUT asset of each placed shot ("" for the reference, the first, and for shots that match it)."""
        async def stats(shot: Shot, start: float, end: float) -> shotlook.ColorStats:
            times = [shot.start + (end - start) * k for k in (0.25, 0.5, 0.75)]
            return shotlook.color_stats(list(await asyncio.gather(*(self.frame(shot, t) for t in times))))
        found = await asyncio.gather(*(stats(*p) for p in placed))
        out = [""]
        for s in found[1:]:
            lut = shotlook.match_lut(s, found[0])
            out.append("" if lut is None else await self._store(owner, lut))
        return out

    async def _store(self, owner: str, lut: CubeLut) -> str:
        text = lut.text().encode("ascii")
        digest = hashlib.sha256(text).hexdigest()[:32]
        await asyncio.to_thread(self.ctx.work_root.mkdir, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.ctx.work_root) as folder:
            path = Path(folder) / "match.cube"
            await asyncio.to_thread(path.write_bytes, text)
            # The same match again is the same asset (request_id: the content).
            asset = await self.ctx.storage.store(owner, path, name=f"match-{digest[:8]}.cube", content_type=LUT_TYPE,
                                                 labels={"viarte.made_by": "propose_edit"}, request_id=f"lut-match:{digest}")
        return asset.id


def _even(x: int) -> int:
    return max(2, x // 2 * 2)


def _refused(field: str, description: str) -> ServiceError:
    return ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, f"{field} {description}",
                                         violations=[FieldViolation(field, description)])
