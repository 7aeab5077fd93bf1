// Speed ramps as the render service computes them (services/render/timeline/ramp.py): a keyframed
// playback rate s(t) over clip-local output time t; the source played after t seconds of output is
// S(t) = integral of s over [0, t], closed-form per eased segment. The editor needs the same S to
// know a ramped clip's length on the timeline (the render derives it from the trim and the ramp),
// so the clip it draws is the clip the export plays.

import { Easing, type Keyframe } from "../gen/viarte/render/v1/timeline_pb";

export const MIN_RATE = 0.1;
export const MAX_RATE = 10;

// expr.py's ease(): the eased progress of a segment, p in [0, 1].
export function ease(p: number, easing: Easing): number {
  if (easing === Easing.EASE_IN) return p * p;
  if (easing === Easing.EASE_OUT) return 1 - (1 - p) * (1 - p);
  if (easing === Easing.EASE_IN_OUT) return p < 0.5 ? 2 * p * p : 1 - 2 * (1 - p) * (1 - p);
  return p;
}

// Integral of ease(q) dq over [0, p].
function integral(p: number, easing: Easing): number {
  if (easing === Easing.EASE_IN) return (p * p * p) / 3;
  if (easing === Easing.EASE_OUT) return p * p - (p * p * p) / 3;
  if (easing === Easing.EASE_IN_OUT) return p < 0.5 ? (2 * p * p * p) / 3 : 1 / 6 - p + 2 * p * p - (2 * p * p * p) / 3;
  return (p * p) / 2;
}

// The keyframed value at clip-local time t (before the first keyframe the first value holds,
// after the last the last); `easing` of a keyframe shapes the segment that ends at it.
export function valueAt(keyframes: readonly Keyframe[], t: number, fallback = 0): number {
  if (keyframes.length === 0) return fallback;
  if (t < keyframes[0].timeSeconds) return keyframes[0].value;
  for (let i = 1; i < keyframes.length; i++) {
    const a = keyframes[i - 1];
    const b = keyframes[i];
    if (t < b.timeSeconds) return a.value + (b.value - a.value) * ease((t - a.timeSeconds) / (b.timeSeconds - a.timeSeconds), b.easing);
  }
  return keyframes[keyframes.length - 1].value;
}

// S(t): source seconds played after t seconds of output. One keyframe (or none) is a constant rate.
export function sourceAt(keyframes: readonly Keyframe[], t: number, constant = 1): number {
  if (keyframes.length === 0) return constant * t;
  const first = keyframes[0];
  if (t < first.timeSeconds || keyframes.length === 1) return first.value * t;
  let start = first.value * first.timeSeconds;
  for (let i = 1; i < keyframes.length; i++) {
    const a = keyframes[i - 1];
    const b = keyframes[i];
    const length = b.timeSeconds - a.timeSeconds;
    if (t < b.timeSeconds) {
      return start + a.value * (t - a.timeSeconds) + (b.value - a.value) * length * integral((t - a.timeSeconds) / length, b.easing);
    }
    start += a.value * length + (b.value - a.value) * length * integral(1, b.easing);
  }
  const last = keyframes[keyframes.length - 1];
  return start + last.value * (t - last.timeSeconds);
}

// S^-1: output seconds needed to play `source` seconds (bisection; S is increasing).
export function timeFor(keyframes: readonly Keyframe[], source: number, constant = 1): number {
  if (keyframes.length === 0) return source / constant;
  let lo = 0;
  let hi = source / MIN_RATE + 1;
  for (let i = 0; i < 200 && hi - lo >= 1e-12; i++) {
    const mid = (lo + hi) / 2;
    if (sourceAt(keyframes, mid) < source) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
