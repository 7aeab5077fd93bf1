"""ProposeEdit (issue 18's smart edit, first cut): clips cut into shots, laid over the music on its beats.

Every clip and the music are analysed (AnalyzeMedia, cached per asset). A clip's shots are the
spans between its scene changes (a hard cut's time; a dissolve's whole span is left out). The edit takes
shots in the clips' order and gives each one the time to a beat of the music: the first beat
at least `min_shot` after the previous cut that still fits in the shot, and for shots that can
run at least `downbeat_min` the first such downbeat instead (longer shots land on the bar). A
shot too short for even the next beat is skipped. The picture of a shot starts at the shot's
start, so no scene boundary is ever inside a clip of the edit. All cuts are hard cuts.

Not yet (see the README): transitions chosen by shot similarity and motion, LUT matching.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from dataclasses import dataclass

from services.kit.errors import FieldViolation, ServiceError, Violations
from services.render.analyze import Analyzer
from services.render.reasons import Reason
from viarte.render.v1 import render_pb2
from viarte.render.v1 import timeline_pb2 as tl

__all__ = ["propose_edit"]

MAX_CLIPS = 50
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


async def propose_edit(analyzer: Analyzer, owner: str, request: render_pb2.ProposeEditRequest) -> render_pb2.ProposeEditResponse:
    min_shot, downbeat_min = _check(request)
    ids = list(request.clip_asset_ids)
    found = await asyncio.gather(
        *(analyzer.analyze(owner, a, f"clip_asset_ids[{i}]") for i, a in enumerate(ids)),
        analyzer.analyze(owner, request.music_asset_id, "music_asset_id"),
    )
    clips, music = [f.analysis for f in found[:-1]], found[-1].analysis
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
    first = await analyzer.ctx.source_info(await analyzer.ctx.storage.resolve(owner, ids[placed[0][0].clip]))
    c = request.canvas
    width, height = c.width or _even(first.width), c.height or _even(first.height)
    total = placed[-1][2]
    timeline = tl.Timeline(canvas=tl.Canvas(width=width, height=height, fps=c.fps or 30.0,
                                            background_color=c.background_color or "#000000", duration_seconds=total))
    video = timeline.tracks.add(id="video", kind=tl.TRACK_KIND_VIDEO, name="Edit")
    for shot, start, end in placed:
        video.clips.add(asset_id=ids[shot.clip], start_seconds=start, source_start_seconds=shot.start,
                        source_end_seconds=shot.start + (end - start), volume=0.0)
    sound = timeline.tracks.add(id="music", kind=tl.TRACK_KIND_AUDIO, name="Music")
    sound.clips.add(asset_id=request.music_asset_id, start_seconds=0, source_end_seconds=total)
    return render_pb2.ProposeEditResponse(timeline=timeline, cut_seconds=[end for _, _, end in placed[:-1]])


def _even(x: int) -> int:
    return max(2, x // 2 * 2)


def _refused(field: str, description: str) -> ServiceError:
    return ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, f"{field} {description}",
                                         violations=[FieldViolation(field, description)])
