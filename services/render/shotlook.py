"""What ProposeEdit looks at in the shots themselves: small frames grabbed with ffmpeg, their
colour histograms (how alike two shots look), global motion (which way a shot pans) and colour
statistics (for the LUT that matches one shot to another). numpy only: no model, no torch.

Transition choice, at a cut from shot A to shot B:
  - A pans (its picture moves at least ``PAN_SPEED`` frame widths/heights per second over its
    last quarter second): the slide that keeps the motion going (picture moving left: the next
    shot slides in from the right, ``slideleft``);
  - A's last frame and B's first look alike (colour histogram intersection >= ``SIMILAR``): a
    dissolve (``fade``), which hides what would otherwise read as a jump cut;
  - otherwise a hard cut (on the beat, the strongest cut there is).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from services.kit.cube_lut import CubeLut
from services.kit.media_input import MediaInput

__all__ = ["FRAME_H", "FRAME_W", "ColorStats", "choose_transition", "color_stats", "grab_frame", "match_lut", "motion", "similarity"]

FRAME_W, FRAME_H = 96, 54
PAN_SPEED = 0.1
SIMILAR = 0.6
_BINS = 4
_LUT_SIZE = 17
_GRAB_TIMEOUT = 60.0


async def grab_frame(ffmpeg: str, source: MediaInput, t: float) -> np.ndarray | None:
    """The frame at ``t`` (fast seek, then exact), FRAME_W x FRAME_H RGB; None when none decodes.
    ``source`` is user media: its demuxer forced, only its own protocol allowed (media_input)."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-nostdin", "-v", "error", "-ss", f"{max(t, 0.0):.3f}", *source.ffmpeg_args(), "-frames:v", "1",
        "-vf", f"scale={FRAME_W}:{FRAME_H}:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), _GRAB_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    finally:
        if proc.returncode is None:  # cancelled: no orphan ffmpeg
            proc.kill()
            await proc.wait()
    if len(out) < FRAME_W * FRAME_H * 3:
        return None
    return np.frombuffer(out[: FRAME_W * FRAME_H * 3], np.uint8).reshape(FRAME_H, FRAME_W, 3)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Colour histogram intersection (4 levels per channel), 0 (nothing shared) .. 1 (same colours)."""
    def hist(img: np.ndarray) -> np.ndarray:
        q = (img.astype(np.int32) * _BINS) // 256
        idx = (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]
        h = np.bincount(idx.ravel(), minlength=_BINS**3).astype(float)
        normalised: np.ndarray = h / h.sum()
        return normalised
    return float(np.minimum(hist(a), hist(b)).sum())


def motion(a: np.ndarray, b: np.ndarray, seconds: float) -> tuple[float, float]:
    """How far the picture moved from ``a`` to ``b`` (phase correlation of the luma), in frame
    widths / heights per second; positive = right / down."""
    def luma(img: np.ndarray) -> np.ndarray:
        y = img.astype(float) @ np.array([0.299, 0.587, 0.114])
        y -= y.mean()
        windowed: np.ndarray = y * np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
        return windowed
    fa, fb = np.fft.fft2(luma(a)), np.fft.fft2(luma(b))
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    dx = dx - w if dx > w // 2 else dx
    dy = dy - h if dy > h // 2 else dy
    return float(dx) / w / seconds, float(dy) / h / seconds


def choose_transition(outgoing_motion: tuple[float, float], last: np.ndarray, first: np.ndarray) -> str | None:
    """The xfade transition for a cut (module docstring), None for a hard cut."""
    vx, vy = outgoing_motion
    if max(abs(vx), abs(vy)) >= PAN_SPEED:
        if abs(vx) >= abs(vy):
            return "slideleft" if vx < 0 else "slideright"
        return "slideup" if vy < 0 else "slidedown"
    if similarity(last, first) >= SIMILAR:
        return "fade"
    return None


@dataclass(frozen=True)
class ColorStats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def color_stats(frames: list[np.ndarray]) -> ColorStats:
    px = np.concatenate([f.reshape(-1, 3) for f in frames]).astype(float) / 255.0
    m, s = px.mean(axis=0), px.std(axis=0)
    return ColorStats((float(m[0]), float(m[1]), float(m[2])), (float(s[0]), float(s[1]), float(s[2])))


def match_lut(shot: ColorStats, reference: ColorStats) -> CubeLut | None:
    """A LUT moving ``shot``'s per-channel mean and spread onto ``reference``'s (gains bounded to
    [0.5, 2]: a flat shot is not blown up); None when the two already match."""
    gains, offsets = [], []
    for c in range(3):
        gain = min(max(reference.std[c] / shot.std[c], 0.5), 2.0) if shot.std[c] > 1e-3 else 1.0
        gains.append(gain)
        offsets.append(reference.mean[c] - shot.mean[c] * gain)
    if all(abs(g - 1) < 0.03 for g in gains) and all(abs(o) < 3 / 255 for o in offsets):
        return None
    steps = [i / (_LUT_SIZE - 1) for i in range(_LUT_SIZE)]
    def row(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
        r, g, b = (min(max(v * gains[c] + offsets[c], 0.0), 1.0) for c, v in enumerate(rgb))
        return r, g, b
    rows = tuple(row((r, g, b)) for b in steps for g in steps for r in steps)  # red fastest, as .cube files are
    return CubeLut(_LUT_SIZE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), rows)
