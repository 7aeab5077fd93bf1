"""Audio effects of a timeline (issue 18): per-clip EQ presets and music ducking under a voice track.

Both live in the render's one graph. EQ presets are fixed chains of ffmpeg's own filters (no
user-given filter text ever reaches ffmpeg). Ducking: each track's clips are mixed into one track
sound; a ducked track's sound goes through `sidechaincompress` keyed by a copy of the voice track's
sound (`asplit`, padded with silence so the compressor never waits on an ended voice), then every
track sound is summed (`amix normalize=0`, the same sum as before tracks were grouped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ffmpeg

from viarte.render.v1 import timeline_pb2 as tl

if TYPE_CHECKING:
    from services.render.timeline.checks import Checks

__all__ = ["EQ_PRESETS", "Ducking", "check_audio", "eq_chain", "mix_tracks", "plan_ducking"]

# Preset -> (ffmpeg filter, options) applied in order. Two 12 dB/octave passes make a 24 dB/octave cut.
EQ_PRESETS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "voice": (("highpass", {"f": 90}), ("equalizer", {"f": 250, "t": "o", "w": 1, "g": -2}),
              ("equalizer", {"f": 3000, "t": "o", "w": 1.5, "g": 3})),
    "warm": (("equalizer", {"f": 200, "t": "o", "w": 1.5, "g": 3}), ("equalizer", {"f": 8000, "t": "o", "w": 2, "g": -2})),
    "bright": (("treble", {"g": 4, "f": 5000}),),
    "bass_boost": (("bass", {"g": 6, "f": 100}),),
    "low_cut": (("highpass", {"f": 150}), ("highpass", {"f": 150})),
    "high_cut": (("lowpass", {"f": 6000}), ("lowpass", {"f": 6000})),
    "telephone": (("highpass", {"f": 300}), ("highpass", {"f": 300}), ("lowpass", {"f": 3400}), ("lowpass", {"f": 3400})),
}

# field -> (low, high, default)
_DUCKING = {
    "threshold_db": (-60.0, 0.0, -30.0),
    "ratio": (1.0, 20.0, 8.0),
    "attack_ms": (1.0, 2000.0, 20.0),
    "release_ms": (10.0, 5000.0, 400.0),
}


@dataclass(frozen=True)
class Ducking:
    track_index: int
    voice_index: int
    threshold_db: float = -30.0
    ratio: float = 8.0
    attack_ms: float = 20.0
    release_ms: float = 400.0


def _voice_index(timeline: tl.Timeline, ti: int) -> int | None:
    wanted = timeline.tracks[ti].ducking.voice_track_id
    found = [i for i, t in enumerate(timeline.tracks) if t.id == wanted]
    return found[0] if len(found) == 1 and found[0] != ti else None


def check_audio(checks: Checks, timeline: tl.Timeline) -> None:
    """Ducking per track and EQ per clip: names, references and ranges (no I/O)."""
    ducked = {i for i, t in enumerate(timeline.tracks) if t.HasField("ducking")}
    for ti, track in enumerate(timeline.tracks):
        path = f"tracks[{ti}]"
        sound = track.kind in (tl.TRACK_KIND_VIDEO, tl.TRACK_KIND_AUDIO)
        for ci, clip in enumerate(track.clips):
            eq = clip.filters.audio_eq
            if eq and checks.check(eq in EQ_PRESETS, f"{path}.clips[{ci}].filters.audio_eq", f"unknown preset; one of {', '.join(EQ_PRESETS)}"):
                checks.check(sound, f"{path}.clips[{ci}].filters.audio_eq", "text clips have no sound")
        if ti not in ducked:
            continue
        d = track.ducking
        dpath = f"{path}.ducking"
        checks.check(sound, dpath, "text tracks have no sound")
        ids = [t.id for t in timeline.tracks]
        if checks.check(bool(d.voice_track_id), f"{dpath}.voice_track_id", "is required"):
            if checks.check(ids.count(d.voice_track_id) == 1, f"{dpath}.voice_track_id", "must name exactly one track's id"):
                voice = ids.index(d.voice_track_id)
                checks.check(voice != ti, f"{dpath}.voice_track_id", "a track cannot duck under itself")
                checks.check(voice not in ducked, f"{dpath}.voice_track_id", "the voice track is itself ducked")
                checks.check(
                    timeline.tracks[voice].kind in (tl.TRACK_KIND_VIDEO, tl.TRACK_KIND_AUDIO),
                    f"{dpath}.voice_track_id", "a text track has no sound",
                )
        for name, (lo, hi, _) in _DUCKING.items():
            if d.HasField(name):
                value = getattr(d, name)
                checks.check(math.isfinite(value) and lo <= value <= hi, f"{dpath}.{name}", f"must be in [{lo:g}, {hi:g}]")


def plan_ducking(timeline: tl.Timeline) -> tuple[Ducking, ...]:
    """The checked ducking of every track (``check_audio`` passed)."""
    out = []
    for ti, track in enumerate(timeline.tracks):
        voice = _voice_index(timeline, ti) if track.HasField("ducking") else None
        if voice is None or track.muted:
            continue
        d = track.ducking
        values = {name: getattr(d, name) if d.HasField(name) else default for name, (_, _, default) in _DUCKING.items()}
        out.append(Ducking(ti, voice, **values))
    return tuple(out)


def eq_chain(stream: Any, preset: str) -> Any:
    for name, options in EQ_PRESETS.get(preset, ()):
        stream = stream.filter(name, **options)
    return stream


def _sum(parts: Sequence[Any]) -> Any:
    return parts[0] if len(parts) == 1 else ffmpeg.filter(list(parts), "amix", inputs=len(parts), normalize=0, duration="longest")


def mix_tracks(by_track: Mapping[int, Sequence[Any]], ducking: Sequence[Ducking]) -> Any:
    """Each track's sounds summed, ducked tracks compressed by their voice track, all summed."""
    tracks = {i: _sum(parts) for i, parts in sorted(by_track.items())}
    active = [d for d in ducking if d.track_index in tracks and d.voice_index in tracks]
    keys: dict[int, list[Any]] = {}
    for voice in sorted({d.voice_index for d in active}):
        users = sum(1 for d in active if d.voice_index == voice)
        split = tracks[voice].asplit()
        copies = [split[k] for k in range(users + 1)]
        tracks[voice] = copies.pop()
        keys[voice] = copies
    for d in active:
        key = keys[d.voice_index].pop().filter("apad")
        tracks[d.track_index] = ffmpeg.filter(
            [tracks[d.track_index], key], "sidechaincompress",
            threshold=f"{10 ** (d.threshold_db / 20):.6f}", ratio=d.ratio, attack=d.attack_ms, release=d.release_ms,
        )
    return _sum([tracks[i] for i in sorted(tracks)])
