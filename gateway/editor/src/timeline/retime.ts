// Keyframes follow the picture. Their times are relative to the clip's start (the contract's
// convention), so trimming the start or splitting a clip — which move its in-point — must move
// them too, or the animation would play shifted over the media (a fade-in keyed at 1 s would land
// on another frame). A speed ramp is cut the same way, which keeps the source every kept frame
// plays exactly where the cut falls on a keyframe or inside a linear segment; a cut inside an
// eased segment would re-ease the rate and shift the source, so model.ts refuses it
// (`cutsEasedSegment`).

import { clone, create } from "@bufbuild/protobuf";
import {
  type AnimatedValue,
  type ClipFilters,
  ClipFiltersSchema,
  Easing,
  type Keyframe,
  KeyframeSchema,
  type Transform,
  TransformSchema,
} from "../gen/viarte/render/v1/timeline_pb";
import { valueAt } from "./ramp";

const EDGE = 0.0005; // a keyframe this close to an edge already marks it
const ms = (s: number): number => Math.round(s * 1000) / 1000;

// The keyframes of old clip-local time [offset, offset + length) in the new clip's time: shifted by
// -offset. Where keyframes are cut off at an edge, one at that edge holds the value the animation
// had there, so every frame kept shows what it showed before (exactly for linear segments; an eased
// segment cut in two is eased again over what is left of it).
export function cutKeyframes(kfs: readonly Keyframe[], offset: number, length = Infinity): Keyframe[] {
  if (kfs.length === 0) return [];
  const out = kfs
    .filter((k) => k.timeSeconds - offset > -EDGE && k.timeSeconds - offset < length + EDGE)
    .map((k) => create(KeyframeSchema, { timeSeconds: Math.max(0, ms(k.timeSeconds - offset)), value: k.value, easing: k.easing }));
  if (kfs[0].timeSeconds < offset - EDGE && !(out.length && out[0].timeSeconds < EDGE)) {
    out.unshift(create(KeyframeSchema, { timeSeconds: 0, value: valueAt(kfs, offset), easing: Easing.LINEAR }));
  }
  const end = offset + length;
  const last = kfs[kfs.length - 1];
  if (Number.isFinite(length) && last.timeSeconds > end + EDGE && !(out.length && out[out.length - 1].timeSeconds > length - EDGE)) {
    const cut = kfs.find((k) => k.timeSeconds > end) ?? last; // the segment the edge cuts keeps its easing
    out.push(create(KeyframeSchema, { timeSeconds: ms(length), value: valueAt(kfs, end), easing: cut.easing }));
  }
  return out;
}

// True when clip-local `t` falls strictly inside a segment of `kfs` that is eased (not linear):
// cutting there cannot keep the curve's shape with the contract's easings.
export function cutsEasedSegment(kfs: readonly Keyframe[], t: number): boolean {
  for (let i = 1; i < kfs.length; i++) {
    if (kfs[i - 1].timeSeconds < t - EDGE && kfs[i].timeSeconds > t + EDGE) return kfs[i].easing !== Easing.LINEAR;
  }
  return false;
}

function cutValue(v: AnimatedValue | undefined, offset: number, length: number): void {
  if (v && v.keyframes.length) v.keyframes = cutKeyframes(v.keyframes, offset, length);
}

const TRANSFORM_KEYS = ["x", "y", "scale", "rotationDegrees", "opacity"] as const;

// The clip's animations (transform, looks' curves, look intensity, speed ramp) for the part of it that starts
// `offset` seconds after its old start and lasts `length`.
export function retimeAnimations<C extends { transform?: Transform; filters?: ClipFilters }>(clip: C, offset: number, length = Infinity): C {
  if (offset === 0 && !Number.isFinite(length)) return clip;
  let transform = clip.transform;
  if (transform) {
    transform = clone(TransformSchema, transform);
    for (const key of TRANSFORM_KEYS) cutValue(transform[key], offset, length);
  }
  let filters = clip.filters;
  if (filters) {
    filters = clone(ClipFiltersSchema, filters);
    filters.exposureKeyframes = cutKeyframes(filters.exposureKeyframes, offset, length);
    filters.temperatureKeyframes = cutKeyframes(filters.temperatureKeyframes, offset, length);
    filters.vignetteKeyframes = cutKeyframes(filters.vignetteKeyframes, offset, length);
    cutValue(filters.lookIntensity, offset, length);
    filters.speedKeyframes = cutKeyframes(filters.speedKeyframes, offset, length);
  }
  return {
    ...clip,
    ...(transform ? { transform } : {}),
    ...(filters ? { filters } : {}),
  };
}
