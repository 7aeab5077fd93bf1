"""Music ducking under a voice track and per-clip EQ presets (issue 18), in the one render graph.
Levels are measured on the rendered MP4 with ffmpeg (bandpass around one tone + astats RMS)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from services.kit.errors import ServiceError
from services.render.media import probe
from services.render.pipeline import render_plan
from services.render.timeline.plan import Source
from services.render.timeline.validate import check_structure, plan_timeline
from tests.render.test_engine import X264
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl

pytestmark = pytest.mark.timeout(600)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Source]:
    folder = tmp_path_factory.mktemp("audio-fx")
    spec = {
        "music": "aevalsrc='0.3*sin(2*PI*220*t)':s=48000:d=6",
        # The voice speaks from 2 s to 4 s.
        "voice": "aevalsrc='0.3*sin(2*PI*1000*t)*between(t,2,4)':s=48000:d=6",
        "two_tones": "aevalsrc='0.2*sin(2*PI*100*t)+0.2*sin(2*PI*10000*t)':s=48000:d=3",
    }
    out = {}
    for name, source in spec.items():
        path = folder / f"{name}.m4a"
        _ffmpeg("-f", "lavfi", "-i", source, "-c:a", "aac", "-b:a", "192k", str(path))
        out[name] = Source(str(path), probe(str(path), "audio/mp4"), "audio/mp4")
    return out


def band_db(path: Path, start: float, end: float, freq: float) -> float:
    """RMS level (dBFS) of the band around ``freq`` between ``start`` and ``end`` s, by ffmpeg astats."""
    chain = f"atrim={start}:{end},bandpass=f={freq}:width_type=q:w=8,astats=measure_perchannel=none"
    err = subprocess.run(["ffmpeg", "-nostats", "-i", str(path), "-af", chain, "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    return float(re.findall(r"RMS level dB:\s*(-?[\d.]+|-inf)", err)[-1])


def ducked_timeline(ducking: tl.AudioDucking | None) -> tl.Timeline:
    t = timeline(duration=6)
    t.mix.disable_loudness_normalization = True
    music = track(t, tl.TRACK_KIND_AUDIO, id="music")
    if ducking is not None:
        music.ducking.CopyFrom(ducking)
    music.clips.add(asset_id="music", source_end_seconds=6)
    track(t, tl.TRACK_KIND_AUDIO, id="voice").clips.add(asset_id="voice", source_end_seconds=6)
    return t


async def test_music_ducks_under_the_voice_and_comes_back(sounds, render_limits, tmp_path) -> None:
    levels = {}
    for name, ducking in (("plain", None), ("ducked", tl.AudioDucking(voice_track_id="voice", release_ms=200))):
        plan = plan_timeline(ducked_timeline(ducking), sounds, render_limits)
        out = await render_plan(plan, tmp_path / name, X264)
        levels[name] = [await asyncio.to_thread(band_db, out.video, a, b, 220) for a, b in ((0.5, 1.5), (2.5, 3.5), (5.0, 5.8))]
    before, during, after = levels["ducked"]
    plain = levels["plain"]
    print(f"music band dB plain {plain}, ducked {levels['ducked']}")
    assert abs(plain[1] - plain[0]) < 1.0, plain  # without ducking the music keeps its level
    assert before - during >= 8.0, levels  # -30 dBFS threshold, ratio 8: ~14 dB expected
    assert abs(after - before) < 1.0, levels  # back once the voice stopped (release 0.2 s)


async def test_eq_presets_cut_the_bands_they_name(sounds, render_limits, tmp_path) -> None:
    levels = {}
    for preset in ("", "low_cut", "high_cut"):
        t = timeline(duration=3)
        t.mix.disable_loudness_normalization = True
        track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id="two_tones", source_end_seconds=3, filters=tl.ClipFilters(audio_eq=preset))
        out = await render_plan(plan_timeline(t, sounds, render_limits), tmp_path / (preset or "plain"), X264)
        levels[preset] = [await asyncio.to_thread(band_db, out.video, 0.5, 2.5, f) for f in (100, 10000)]
    print(f"(100 Hz, 10 kHz) dB: {levels}")
    (low, high), (lc_low, lc_high), (hc_low, hc_high) = levels[""], levels["low_cut"], levels["high_cut"]
    assert low - lc_low >= 12 and abs(high - lc_high) < 1.5, levels
    assert high - hc_high >= 12 and abs(low - hc_low) < 1.5, levels


def _fields(t: tl.Timeline, render_limits) -> set[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as info:
        check_structure(t, render_limits)
    return {v.field for v in info.value.field_violations}


def test_ducking_and_eq_fields_are_validated(render_limits) -> None:
    t = ducked_timeline(tl.AudioDucking(voice_track_id="nobody", threshold_db=5, ratio=0.5, attack_ms=0, release_ms=1e9))
    t.tracks[1].clips[0].filters.audio_eq = "loudness_war"
    assert _fields(t, render_limits) == {
        "tracks[0].ducking.voice_track_id", "tracks[0].ducking.threshold_db", "tracks[0].ducking.ratio",
        "tracks[0].ducking.attack_ms", "tracks[0].ducking.release_ms", "tracks[1].clips[0].filters.audio_eq",
    }
    itself = ducked_timeline(tl.AudioDucking(voice_track_id="music"))
    assert _fields(itself, render_limits) == {"tracks[0].ducking.voice_track_id"}
    chained = ducked_timeline(tl.AudioDucking(voice_track_id="voice"))
    chained.tracks[1].ducking.voice_track_id = "music"  # each ducks under the other
    assert _fields(chained, render_limits) == {"tracks[0].ducking.voice_track_id", "tracks[1].ducking.voice_track_id"}
    nan = ducked_timeline(tl.AudioDucking(voice_track_id="voice", ratio=float("nan")))
    assert _fields(nan, render_limits) == {"tracks[0].ducking.ratio"}
