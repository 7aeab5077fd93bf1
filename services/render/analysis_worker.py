"""AnalyzeMedia's worker process (issue 18): scene cuts, tempo/beats/downbeats, loudness, silences.

`python -m services.render.analysis_worker` reads one JSON request on stdin and writes one JSON
answer on stdout. A process of its own because PySceneDetect, OpenCV, librosa and numba are heavy
imports and CPU-bound work that must not hold the server's event loop (nor its GIL); the server
kills it at the call's deadline. It opens the media only through `kit.media_input` (forced demuxer,
protocol whitelist), decoding with ffmpeg into pipes:
- picture: downscaled to `_WIDTH` px, BGR, fed frame by frame to PySceneDetect's `ContentDetector`
  (hard cuts) and `ThresholdDetector` (fades to/from black); a dissolve, whose per-frame change stays
  under the cut threshold, is a run of raised content scores whose end frames differ by a cut's
  worth (`_dissolves`);
- sound: mono 22,050 Hz float for librosa (`beat_track` on the onset envelope, each beat moved to
  the strongest onset within a frame's reach; downbeats = the phase of four beats with the
  strongest onsets, i.e. 4/4 assumed), silences from the RMS envelope; and a second decode through
  ffmpeg's `ebur128` for the integrated loudness and range of the original channels.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from services.kit.media_input import media_input, scrub

_WIDTH = 192
_SR = 22050
_HOP = 256
_CUT_THRESHOLD = 27.0
_SILENCE_DB = -50.0
_MIN_SILENCE = 0.5


@dataclass
class Request:
    source: str
    content_type: str
    duration: float
    fps: float = 0.0
    width: int = 0
    height: int = 0
    has_video: bool = False
    has_audio: bool = False
    ffmpeg: str = "ffmpeg"


@dataclass
class Analysis:
    duration_seconds: float = 0.0
    # (time, "cut" | "dissolve" | "fade", span start, span end): a cut's span is its time; a
    # dissolve's holds the whole transition (an over-estimate, never shorter).
    scenes: list[tuple[float, str, float, float]] = field(default_factory=list)
    tempo_bpm: float = 0.0
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    integrated_lufs: float = 0.0
    loudness_range_lu: float = 0.0
    silences: list[tuple[float, float]] = field(default_factory=list)


def _decode(req: Request, output_args: list[str]) -> subprocess.Popen[bytes]:
    inp = media_input(req.content_type, req.source, rw_timeout_seconds=30)
    argv = [req.ffmpeg, "-nostdin", "-v", "error", *inp.ffmpeg_args(), *output_args, "pipe:1"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes], req: Request) -> None:
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(scrub(err, req.source) or f"ffmpeg exit status {proc.returncode}")


def scenes(req: Request) -> list[tuple[float, str, float, float]]:
    from scenedetect import ContentDetector, FrameTimecode, ThresholdDetector

    width = _WIDTH
    height = max(2, round(req.height * width / req.width / 2) * 2) if req.width else width
    fps = float(req.fps or 25.0)
    proc = _decode(req, ["-an", "-vf", f"fps={fps},scale={width}:{height},format=bgr24", "-f", "rawvideo"])
    size = width * height * 3
    # min_scene_len 4 frames: shots shorter than that are flashes, not edits.
    content = ContentDetector(threshold=_CUT_THRESHOLD, min_scene_len=4)
    fades = ThresholdDetector(threshold=12, min_scene_len=4)
    found: list[tuple[float, str, float, float]] = []
    frames: list[np.ndarray] = []  # every frame at a quarter of the size, for dissolves
    assert proc.stdout is not None
    index = 0
    while True:
        data = proc.stdout.read(size)
        if len(data) < size:
            break
        frame = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        tc = FrameTimecode(index, fps)
        found += [(t.seconds, "cut", t.seconds, t.seconds) for t in content.process_frame(tc, frame)]
        found += [(t.seconds, "fade", t.seconds, t.seconds) for t in fades.process_frame(tc, frame)]
        frames.append(frame[::4, ::4].copy())
        index += 1
    _finish(proc, req)
    cuts = [f[0] for f in found if f[1] == "cut"]
    found += [(t, "dissolve", a, b) for t, a, b in _dissolves(frames, fps, cuts)]
    return sorted((round(t, 4), kind, round(a, 4), round(b, 4)) for t, kind, a, b in found)


def _dissolves(frames: list[np.ndarray], fps: float, cuts: list[float]) -> list[tuple[float, float, float]]:
    """Gradual transitions (dissolves, wipes), whose per-frame change stays under the cut threshold:
    the change between the frames half a second before and after each frame (ContentDetector's
    measure: mean absolute HSV difference) reaches the cut threshold, at a peak at least 1.5 times
    the same change a second away on both sides (a steady pan or zoom changes as much everywhere);
    windows holding a hard cut are left out. Reported at the middle of the peak (blends are not
    linear in HSV: the time can sit anywhere inside the transition, not at its exact middle), with
    a span that holds the transition: every window whose change is at least half the peak's."""
    import cv2

    k = max(2, round(fps / 2))
    hsv = [cv2.cvtColor(f, cv2.COLOR_BGR2HSV).astype(np.int16) for f in frames]
    n = len(hsv)
    cut_frames = [round(t * fps) for t in cuts]
    wide = np.zeros(n)
    for i in range(k, n - k):
        if not any(i - k < c <= i + k for c in cut_frames):  # a hard cut's change is not gradual
            wide[i] = float(np.abs(hsv[i + k] - hsv[i - k]).mean())
    out: list[tuple[float, float, float]] = []
    i = 0
    while i < n:
        if wide[i] < _CUT_THRESHOLD:
            i += 1
            continue
        j = i
        while j + 1 < n and wide[j + 1] >= _CUT_THRESHOLD:
            j += 1
        peak = float(wide[i : j + 1].max())
        top = [m for m in range(i, j + 1) if wide[m] >= 0.9 * peak]
        mid = (top[0] + top[-1]) / 2
        around = [wide[round(mid) + d] for d in (-2 * k, 2 * k) if 0 <= round(mid) + d < n]
        if all(peak >= 1.5 * a for a in around):
            half = [m for m in range(i, j + 1) if wide[m] >= 0.5 * peak]
            out.append((mid / fps, max(0, half[0] - k) / fps, min(n - 1, half[-1] + k) / fps))
        i = j + 1
    return out


def _pcm(req: Request) -> np.ndarray:
    proc = _decode(req, ["-vn", "-ac", "1", "-ar", str(_SR), "-f", "f32le"])
    assert proc.stdout is not None
    data = proc.stdout.read()
    _finish(proc, req)
    return np.frombuffer(data, np.float32).copy()


def beats(y: np.ndarray) -> tuple[float, list[float], list[float]]:
    import librosa

    if len(y) < _SR or float(np.max(np.abs(y))) < 1e-4:
        return 0.0, [], []
    env = librosa.onset.onset_strength(y=y, sr=_SR, hop_length=_HOP)
    tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=_SR, hop_length=_HOP, trim=False)
    # beat_track places beats on its tempo grid; each moves to the strongest onset within 2 hops
    # (librosa's frame is where the onset's energy rises, backtracked to the rise's start).
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=_SR, hop_length=_HOP, backtrack=False)
    snapped = []
    for f in frames:
        near = onsets[np.abs(onsets - f) <= 2] if len(onsets) else onsets
        snapped.append(int(near[np.argmax(env[near])]) if len(near) else int(f))
    times = [float(t) for t in librosa.frames_to_time(np.array(snapped), sr=_SR, hop_length=_HOP)]
    strength = env[np.array(snapped)] if snapped else np.array([])
    phase = int(np.argmax([strength[p::4].mean() if len(strength[p::4]) else 0 for p in range(4)])) if len(times) >= 4 else 0
    return float(np.atleast_1d(tempo)[0]), times, times[phase::4]


def silences(y: np.ndarray) -> list[tuple[float, float]]:
    import librosa

    if not len(y):
        return []
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=_HOP)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    quiet = db < _SILENCE_DB
    out, start = [], None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            a, b = start * _HOP / _SR, min(i * _HOP / _SR, len(y) / _SR)
            if b - a >= _MIN_SILENCE:
                out.append((round(a, 3), round(b, 3)))
            start = None
    return out


def loudness(req: Request) -> tuple[float, float]:
    # ametadata prints the measurements to standard output; the null muxer writes nothing there.
    proc = _decode(req, ["-vn", "-af", "ebur128=metadata=1,ametadata=mode=print:file=/dev/stdout", "-f", "null"])
    assert proc.stdout is not None
    text = proc.stdout.read().decode("utf-8", "replace")
    _finish(proc, req)
    integrated = lra = None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "lavfi.r128.I":
            integrated = float(value)
        elif key == "lavfi.r128.LRA":
            lra = float(value)
    if integrated is None or not math.isfinite(integrated):
        return -70.0, 0.0
    return max(integrated, -70.0), lra or 0.0


def analyze(req: Request) -> Analysis:
    out = Analysis(duration_seconds=req.duration)
    if req.has_video:
        out.scenes = scenes(req)
    if req.has_audio:
        y = _pcm(req)
        out.tempo_bpm, out.beats, out.downbeats = beats(y)
        out.silences = silences(y)
        out.integrated_lufs, out.loudness_range_lu = loudness(req)
    return out


def main() -> int:
    req = Request(**json.loads(sys.stdin.read()))
    try:
        result: dict[str, Any] = {"ok": asdict(analyze(req))}
    except Exception as exc:  # reported to the server, which maps it to a status
        result = {"error": scrub(str(exc).encode(), req.source)[:300]}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
