// Keyframe lanes (issue 19): the animatable properties of a clip as the contract animates them —
// Transform's x/y/scale/rotation/opacity (AnimatedValue), the looks' exposure/temperature/vignette
// keyframes and look_intensity (ClipFilters), and the speed ramp (ClipFilters.speed_keyframes) —
// with pure operations to add, move, re-value, re-ease and delete keyframes. Times are relative to
// the clip's start on the timeline (the contract's convention); TimelineError for what cannot be.

import { clone, create } from "@bufbuild/protobuf";
import {
  type AnimatedValue,
  AnimatedValueSchema,
  ClipFiltersSchema,
  Easing,
  type Keyframe,
  KeyframeSchema,
  TransformSchema,
} from "../gen/viarte/render/v1/timeline_pb";
import { findClip, lengthFor, type Clip, sourceUsed, type Timeline, TimelineError, updateClip } from "./model";
import { MAX_RATE, MIN_RATE, valueAt } from "./ramp";

type TransformKey = "x" | "y" | "scale" | "rotationDegrees" | "opacity";
type CurveKey = "exposureKeyframes" | "temperatureKeyframes" | "vignetteKeyframes";
type ConstantKey = "exposure" | "temperatureKelvin" | "vignette";

export interface Property {
  id: string;
  label: string;
  min: number;
  max: number;
  step: number;
  // The value when nothing is set (the contract's default).
  neutral: number;
  source: { transform: TransformKey } | { curve: CurveKey; constant: ConstantKey } | { look: true } | { speed: true };
}

export const PROPERTIES: Property[] = [
  { id: "x", label: "Position X", min: -1, max: 2, step: 0.01, neutral: 0.5, source: { transform: "x" } },
  { id: "y", label: "Position Y", min: -1, max: 2, step: 0.01, neutral: 0.5, source: { transform: "y" } },
  { id: "scale", label: "Scale", min: 0.01, max: 10, step: 0.01, neutral: 1, source: { transform: "scale" } },
  { id: "rotation", label: "Rotation (°)", min: -360, max: 360, step: 1, neutral: 0, source: { transform: "rotationDegrees" } },
  { id: "opacity", label: "Opacity", min: 0, max: 1, step: 0.01, neutral: 1, source: { transform: "opacity" } },
  { id: "exposure", label: "Exposure (stops)", min: -3, max: 3, step: 0.1, neutral: 0, source: { curve: "exposureKeyframes", constant: "exposure" } },
  // 6500 K is neutral daylight: the value a new temperature keyframe starts from.
  { id: "temperature", label: "Temperature (K)", min: 1000, max: 40000, step: 100, neutral: 6500, source: { curve: "temperatureKeyframes", constant: "temperatureKelvin" } },
  { id: "vignette", label: "Vignette", min: 0, max: 1, step: 0.05, neutral: 0, source: { curve: "vignetteKeyframes", constant: "vignette" } },
  { id: "look", label: "Look intensity", min: 0, max: 1, step: 0.05, neutral: 1, source: { look: true } },
  { id: "speed", label: "Speed ramp", min: MIN_RATE, max: MAX_RATE, step: 0.1, neutral: 1, source: { speed: true } },
];

export const EASINGS: [Easing, string][] = [
  [Easing.LINEAR, "Linear"],
  [Easing.EASE_IN, "Ease in"],
  [Easing.EASE_OUT, "Ease out"],
  [Easing.EASE_IN_OUT, "Ease in-out"],
];

export function property(id: string): Property {
  const p = PROPERTIES.find((q) => q.id === id);
  if (!p) throw new TimelineError(`no property ${id}`);
  return p;
}

// The lanes a clip has: pictures move and grade, text moves, sound and video play at a speed.
export function propertiesFor(clip: Clip): Property[] {
  return PROPERTIES.filter((p) => {
    if ("transform" in p.source) return clip.type !== "audio";
    if ("speed" in p.source) return clip.type === "video" || clip.type === "audio";
    return clip.type === "video" || clip.type === "image";
  });
}

export function keyframesOf(clip: Clip, p: Property): Keyframe[] {
  const s = p.source;
  if ("transform" in s) return clip.transform?.[s.transform]?.keyframes ?? [];
  if ("curve" in s) return clip.filters?.[s.curve] ?? [];
  if ("look" in s) return clip.filters?.lookIntensity?.keyframes ?? [];
  return clip.filters?.speedKeyframes ?? [];
}

// The property's value with no keyframes.
export function constantOf(clip: Clip, p: Property): number {
  const s = p.source;
  if ("transform" in s) {
    const v = clip.transform?.[s.transform];
    return v ? v.value : p.neutral;
  }
  if ("curve" in s) return clip.filters?.[s.constant] || p.neutral;
  if ("look" in s) return clip.filters?.lookIntensity ? clip.filters.lookIntensity.value : p.neutral;
  return clip.speed ?? p.neutral;
}

// The value at clip-local time t, as the render evaluates it.
export function valueOf(clip: Clip, p: Property, t: number): number {
  return valueAt(keyframesOf(clip, p), t, constantOf(clip, p));
}

const ms = (s: number): number => Math.round(s * 1000) / 1000;
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const GAP = 0.001; // keyframe times are strictly increasing

// Writes `keyframes` (and, with none left, `constant`) into the clip's property.
function withKeyframes(clip: Clip, p: Property, keyframes: Keyframe[], constant: number): Clip {
  const s = p.source;
  if ("transform" in s) {
    const transform = clip.transform ? clone(TransformSchema, clip.transform) : create(TransformSchema);
    const value: AnimatedValue = transform[s.transform] ?? create(AnimatedValueSchema, { value: constant });
    value.keyframes = keyframes;
    if (keyframes.length === 0) value.value = constant;
    transform[s.transform] = value;
    return { ...clip, transform };
  }
  const filters = clip.filters ? clone(ClipFiltersSchema, clip.filters) : create(ClipFiltersSchema);
  if ("curve" in s) {
    filters[s.curve] = keyframes;
    // The contract: keyframes replace the constant, which must then be 0.
    const neutralConstant = s.constant === "temperatureKelvin" && constant === p.neutral ? 0 : constant;
    filters[s.constant] = keyframes.length ? 0 : neutralConstant;
  } else if ("look" in s) {
    const look = filters.lookIntensity ?? create(AnimatedValueSchema, { value: constant });
    look.keyframes = keyframes;
    if (keyframes.length === 0) look.value = constant;
    filters.lookIntensity = look;
  } else {
    filters.speedKeyframes = keyframes;
    // A ramp excludes Clip.speed; with no keyframes left the last rate stays as the clip's speed.
    return { ...clip, filters, speed: keyframes.length || constant === 1 ? undefined : constant };
  }
  return { ...clip, filters };
}

// Applies `change` to the property's keyframes. A speed ramp keeps the source range the clip plays:
// its length on the timeline follows the ramp (as the render computes it) and the clips after it
// on the track move by the difference.
function change(timeline: Timeline, clipId: string, id: string, edit: (kfs: Keyframe[], clip: Clip) => Keyframe[]): Timeline {
  const p = property(id);
  const { clip, track } = findClip(timeline, clipId);
  if (!propertiesFor(clip).includes(p)) throw new TimelineError(`a ${clip.type} clip has no ${p.label.toLowerCase()}`);
  const before = keyframesOf(clip, p);
  const after = edit(before.map((k) => clone(KeyframeSchema, k)), clip);
  const last = before.length ? before[before.length - 1].value : constantOf(clip, p);
  let next = withKeyframes(clip, p, after, after.length ? constantOf(clip, p) : last);
  if (!("speed" in p.source)) return updateClip(timeline, clipId, () => next);
  const duration = lengthFor(next, sourceUsed(clip));
  if (clip.mediaDuration > 0 && clip.sourceStart + sourceUsed(next, duration) > clip.mediaDuration + 1e-6) {
    throw new TimelineError("the ramp would play past the end of the source");
  }
  next = { ...next, duration };
  const shift = duration - clip.duration;
  const shifted = timeline.tracks.map((t) =>
    t.id !== track.id ? t : { ...t, clips: t.clips.map((c) => (c.start > clip.start ? { ...c, start: ms(c.start + shift) } : c)) },
  );
  return updateClip({ ...timeline, tracks: shifted }, clipId, () => next);
}

// A keyframe at clip-local `t` holding the value the property has there (so adding one changes
// nothing until it is moved or edited).
export function addKeyframe(timeline: Timeline, clipId: string, id: string, t: number): Timeline {
  return change(timeline, clipId, id, (kfs, clip) => {
    const time = ms(clamp(t, 0, clip.duration));
    if (kfs.some((k) => Math.abs(k.timeSeconds - time) < GAP)) throw new TimelineError("there is a keyframe here already");
    const p = property(id);
    const kf = create(KeyframeSchema, { timeSeconds: time, value: clamp(valueOf(clip, p, time), p.min, p.max), easing: Easing.LINEAR });
    return [...kfs, kf].sort((a, b) => a.timeSeconds - b.timeSeconds);
  });
}

// Moves keyframe `index` to clip-local `t`, kept between its neighbours (their order is the
// segments' order) and inside the clip.
export function moveKeyframe(timeline: Timeline, clipId: string, id: string, index: number, t: number): Timeline {
  return change(timeline, clipId, id, (kfs, clip) => {
    at(kfs, index);
    const lo = index > 0 ? kfs[index - 1].timeSeconds + GAP : 0;
    const hi = index < kfs.length - 1 ? kfs[index + 1].timeSeconds - GAP : Math.max(lo, clip.duration);
    kfs[index].timeSeconds = ms(clamp(t, lo, hi));
    return kfs;
  });
}

export function setKeyframeValue(timeline: Timeline, clipId: string, id: string, index: number, value: number): Timeline {
  const p = property(id);
  if (!Number.isFinite(value)) throw new TimelineError("enter a number");
  return change(timeline, clipId, id, (kfs) => {
    at(kfs, index).value = clamp(value, p.min, p.max);
    return kfs;
  });
}

// The easing of the segment that ends at keyframe `index`.
export function setKeyframeEasing(timeline: Timeline, clipId: string, id: string, index: number, easing: Easing): Timeline {
  return change(timeline, clipId, id, (kfs) => {
    at(kfs, index).easing = easing;
    return kfs;
  });
}

export function deleteKeyframe(timeline: Timeline, clipId: string, id: string, index: number): Timeline {
  return change(timeline, clipId, id, (kfs) => {
    at(kfs, index);
    return kfs.filter((_, i) => i !== index);
  });
}

function at(kfs: Keyframe[], index: number): Keyframe {
  const kf = kfs[index];
  if (!kf) throw new TimelineError(`no keyframe ${index}`);
  return kf;
}
