"""Keyframed values as ffmpeg expressions (and the same curve in Python, for checks and previews)."""

from __future__ import annotations

import itertools

from services.render.timeline.plan import Animated, Keyframe

__all__ = ["animated_expr", "ease", "evaluate", "num"]


def num(x: float) -> str:
    """A compact decimal that ffmpeg's expression parser reads (no exponent notation)."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def ease(p: float, easing: str) -> float:
    if easing == "ease_in":
        return p * p
    if easing == "ease_out":
        return p * (2 - p)
    if easing == "ease_in_out":
        return 2 * p * p if p < 0.5 else -1 + (4 - 2 * p) * p
    return p


def evaluate(value: Animated, t: float) -> float:
    """The value at clip-local time ``t`` (what the ffmpeg expression computes)."""
    kfs = value.keyframes
    if not kfs:
        return value.value
    if t < kfs[0].time:
        return kfs[0].value
    for a, b in itertools.pairwise(kfs):
        if t < b.time:
            p = min(max((t - a.time) / (b.time - a.time), 0.0), 1.0)
            return a.value + (b.value - a.value) * ease(p, b.easing)
    return kfs[-1].value


def _ease_expr(p: str, easing: str) -> str:
    if easing == "ease_in":
        return f"({p})*({p})"
    if easing == "ease_out":
        return f"({p})*(2-({p}))"
    if easing == "ease_in_out":
        return f"if(lt({p},0.5),2*({p})*({p}),-1+(4-2*({p}))*({p}))"
    return p


def _segment(a: Keyframe, b: Keyframe, t: str) -> str:
    p = f"clip(({t}-{num(a.time)})/{num(b.time - a.time)},0,1)"
    return f"{num(a.value)}+{num(b.value - a.value)}*({_ease_expr(p, b.easing)})"


def _segments(pairs: list[tuple[Keyframe, Keyframe]], t: str) -> str:
    """The segment holding ``t`` (first keyframe <= t < last one), chosen by a balanced tree of
    ``if``s: ffmpeg's parser refuses expressions nested ~100 deep, which a chain of one ``if``
    per keyframe reaches at ~95 keyframes; a tree nests log2(keyframes) deep."""
    if len(pairs) == 1:
        return _segment(*pairs[0], t)
    mid = len(pairs) // 2
    return f"if(lt({t},{num(pairs[mid][0].time)}),{_segments(pairs[:mid], t)},{_segments(pairs[mid:], t)})"


def animated_expr(value: Animated, t: str = "t", scale: float = 1.0, offset: float = 0.0) -> str:
    """``offset + scale * value(t)`` as an ffmpeg expression of the clip-local time ``t``."""
    kfs = value.keyframes
    if len(kfs) <= 1:
        return num(offset + scale * value.constant)
    inside = _segments(list(itertools.pairwise(kfs)), t)
    expr = f"if(lt({t},{num(kfs[0].time)}),{num(kfs[0].value)},if(lt({t},{num(kfs[-1].time)}),{inside},{num(kfs[-1].value)}))"
    if scale == 1.0 and offset == 0.0:
        return expr
    return f"{num(offset)}+{num(scale)}*({expr})"
