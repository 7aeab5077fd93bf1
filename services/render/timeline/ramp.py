"""Speed ramps: a keyframed playback rate s(t) over clip-local output time t.

The source time consumed after t seconds of output is S(t) = integral of s from 0 to t: a piecewise
polynomial (the integral of each eased segment is closed-form). Video is retimed with ONE ``setpts``
expression that maps a source timestamp x to output time S^-1(x), solved per frame with ffmpeg's
``root()`` (bisection; S is strictly increasing since every rate is positive). The same S in
Python plans the clip's length and the seek range, and splits the audio into short pieces that
are each time-stretched at their mean rate (atempo only takes a constant tempo).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from services.render.timeline.expr import ease, num
from services.render.timeline.plan import Keyframe

__all__ = ["MAX_RATE", "MIN_RATE", "SpeedRamp"]

MIN_RATE = 0.1
MAX_RATE = 10.0


def _integral(p: float, easing: str) -> float:
    """E(p) = integral of ease(q) dq over [0, p], for p in [0, 1]."""
    if easing == "ease_in":
        return p**3 / 3
    if easing == "ease_out":
        return p * p - p**3 / 3
    if easing == "ease_in_out":
        return 2 * p**3 / 3 if p < 0.5 else 1 / 6 - p + 2 * p * p - 2 * p**3 / 3
    return p * p / 2


def _integral_expr(p: str, easing: str) -> str:
    if easing == "ease_in":
        return f"{p}*{p}*{p}/3"
    if easing == "ease_out":
        return f"{p}*{p}-{p}*{p}*{p}/3"
    if easing == "ease_in_out":
        return f"if(lt({p},0.5),2*{p}*{p}*{p}/3,1/6-{p}+2*{p}*{p}-2*{p}*{p}*{p}/3)"
    return f"{p}*{p}/2"


@dataclass(frozen=True)
class SpeedRamp:
    """At least two keyframes, strictly increasing times, rates in [MIN_RATE, MAX_RATE]."""

    keyframes: tuple[Keyframe, ...]

    def speed_at(self, t: float) -> float:
        kfs = self.keyframes
        if t < kfs[0].time:
            return kfs[0].value
        for a, b in itertools.pairwise(kfs):
            if t < b.time:
                return a.value + (b.value - a.value) * ease((t - a.time) / (b.time - a.time), b.easing)
        return kfs[-1].value

    def _starts(self) -> list[float]:
        """S at each keyframe time."""
        kfs = self.keyframes
        out = [kfs[0].value * kfs[0].time]
        for a, b in itertools.pairwise(kfs):
            length = b.time - a.time
            out.append(out[-1] + a.value * length + (b.value - a.value) * length * _integral(1.0, b.easing))
        return out

    def source_at(self, t: float) -> float:
        """S(t): source seconds played after ``t`` seconds of output (t >= 0)."""
        kfs, starts = self.keyframes, self._starts()
        if t < kfs[0].time:
            return kfs[0].value * t
        for (a, b), c in zip(itertools.pairwise(kfs), starts, strict=False):
            if t < b.time:
                length = b.time - a.time
                return c + a.value * (t - a.time) + (b.value - a.value) * length * _integral((t - a.time) / length, b.easing)
        return starts[-1] + kfs[-1].value * (t - kfs[-1].time)

    def time_for(self, source: float) -> float:
        """S^-1: output seconds needed to play ``source`` seconds (bisection; S is increasing)."""
        lo, hi = 0.0, source / MIN_RATE + 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            if self.source_at(mid) < source:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        return (lo + hi) / 2

    def keyframe_at(self, t: float) -> int:
        """Index of the keyframe that ends the segment containing output time ``t``."""
        for i, kf in enumerate(self.keyframes):
            if t < kf.time:
                return i
        return len(self.keyframes) - 1

    def source_expr(self, t: str) -> str:
        """S(t) as an ffmpeg expression of ``t`` (a variable or ``ld(n)``)."""
        kfs, starts = self.keyframes, self._starts()
        expr = f"{num(starts[-1])}+{num(kfs[-1].value)}*({t}-{num(kfs[-1].time)})"
        for (a, b), c in reversed(list(zip(itertools.pairwise(kfs), starts, strict=False))):
            length = b.time - a.time
            p = f"(({t}-{num(a.time)})/{num(length)})"
            seg = f"{num(c)}+{num(a.value)}*({t}-{num(a.time)})+{num((b.value - a.value) * length)}*({_integral_expr(p, b.easing)})"
            expr = f"if(lt({t},{num(b.time)}),{seg},{expr})"
        return f"if(lt({t},{num(kfs[0].time)}),{num(kfs[0].value)}*{t},{expr})"

    def pts_expr(self, local_start: float, horizon: float) -> str:
        """setpts expression: a frame ``x`` source seconds after the seek point (which is S(local_start))
        goes to clip-local output time S^-1(S(local_start) + x), searched in [0, horizon]."""
        x = f"({num(self.source_at(local_start))}+(PTS-STARTPTS)*TB)"
        return f"root({self.source_expr('ld(0)')}-{x},{num(horizon)})/TB"

    def pieces(self, t0: float, t1: float, max_piece: float = 0.25) -> list[tuple[float, float]]:
        """[t0, t1) cut at keyframes, and varying segments into pieces of at most ``max_piece`` s
        (each piece plays its audio at one mean rate)."""
        cuts = sorted({t0, t1} | {k.time for k in self.keyframes if t0 < k.time < t1})
        out: list[tuple[float, float]] = []
        for a, b in itertools.pairwise(cuts):
            n = 1 if self._flat(a, b) else max(1, math.ceil((b - a) / max_piece - 1e-9))
            out.extend((a + (b - a) * i / n, a + (b - a) * (i + 1) / n) for i in range(n))
        return out

    def _flat(self, a: float, b: float) -> bool:
        """Whether the rate is constant on [a, b] (inside one segment between equal keyframes, or outside)."""
        kfs = self.keyframes
        if b <= kfs[0].time or a >= kfs[-1].time:
            return True
        i = self.keyframe_at(a)
        return 0 < i and kfs[i - 1].value == kfs[i].value
