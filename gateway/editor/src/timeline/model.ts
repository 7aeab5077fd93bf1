// The editor's timeline document: plain immutable data and pure operations (no React, no I/O),
// converted to and from the viarte.render.v1.Timeline message that the render service reads.
//
// Every operation returns a new Timeline or throws TimelineError (shown to the user as is).
// Times are seconds. A clip occupies [start, start + duration) on its track; video and audio clips
// play their source from sourceStart at their speed (Clip.speed, or the speed ramp in
// filters.speedKeyframes) for `duration` seconds of timeline.
//
// What the editor does not edit is never dropped: a clip keeps the proto it was read from (`origin`)
// and toProto writes the edited fields over it, so a project made through the SDK or the assistant
// (fit, fades, text styles, transition easing...) survives a save from the editor.

import { clone, create, equals } from "@bufbuild/protobuf";
import {
  type AudioDucking,
  type AudioMix,
  type Clip as ClipProto,
  type ClipFilters,
  ClipSchema,
  type Easing,
  KeyframeSchema,
  TextStyleSchema,
  TimelineSchema,
  TrackKind,
  TrackSchema,
  TransitionKind,
  TransitionSchema,
  type Timeline as TimelineProto,
  type Transform,
} from "../gen/viarte/render/v1/timeline_pb";
import { sourceAt, timeFor } from "./ramp";
import { cutsEasedSegment, retimeAnimations } from "./retime";

export type TrackType = "video" | "text" | "audio";
export type ClipType = "video" | "image" | "audio" | "text";

export interface TransitionIn {
  kind: TransitionKind;
  duration: number;
  // An xfade transition by name (ListCapabilities), e.g. from ProposeEdit; wins over `kind`.
  name?: string;
  // The transition's progress curve; unset = linear.
  easing?: Easing;
}

// The saved clip this one was read from, and the timing the editor derived from it: while the
// timing is unchanged toProto writes the saved trim fields back as they were (no rounding).
export interface ClipOrigin {
  proto: ClipProto;
  duration: number;
  sourceStart: number;
}

export interface Clip {
  id: string;
  type: ClipType;
  name: string;
  assetId: string; // "" for text clips
  start: number;
  duration: number;
  sourceStart: number;
  // Length of the source media; 0 = unbounded (images, text).
  mediaDuration: number;
  volume: number;
  text: string;
  transitionIn: TransitionIn | null;
  // Looks, audio EQ, LUT, speed ramp...: the proto message kept whole (timeline/effects.ts edits it).
  filters?: ClipFilters;
  // Position, scale, rotation, opacity (keyframes.ts edits them); the proto message kept whole.
  transform?: Transform;
  // Constant playback rate (Clip.speed); unset = 1. Excludes a speed ramp.
  speed?: number;
  origin?: ClipOrigin;
}

export interface Track {
  id: string;
  type: TrackType;
  name: string;
  clips: Clip[]; // sorted by start
  volume: number;
  muted: boolean;
  hidden: boolean;
  // Music ducking under another track's voice (timeline/effects.ts).
  ducking?: AudioDucking;
}

export interface Canvas {
  width: number;
  height: number;
  fps: number;
  background: string;
  // Canvas.duration_seconds; unset/0 = the end of the last clip.
  duration?: number;
}

export interface Timeline {
  canvas: Canvas;
  tracks: Track[]; // z-order: tracks[0] is the bottom layer
  // The loudness settings of the mix, kept as saved.
  mix?: AudioMix;
}

export class TimelineError extends Error {}

export const MIN_CLIP_SECONDS = 0.1;
export const DEFAULT_STILL_SECONDS = 3;
const EPSILON = 1e-6;

let counter = 0;
export function newId(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter.toString(36)}`;
}

export function emptyTimeline(canvas: Partial<Canvas> = {}): Timeline {
  return {
    canvas: { width: 640, height: 360, fps: 24, background: "#000000", ...canvas },
    tracks: [
      makeTrack("video", "Video 1", "v1"),
      makeTrack("video", "Video 2", "v2"),
      makeTrack("text", "Text", "t1"),
      makeTrack("audio", "Audio", "a1"),
    ],
  };
}

export function makeTrack(type: TrackType, name: string, id = newId("track")): Track {
  return { id, type, name, clips: [], volume: 1, muted: false, hidden: false };
}

export function makeClip(fields: Partial<Clip> & Pick<Clip, "type">): Clip {
  const still = fields.type === "image" || fields.type === "text";
  return {
    id: newId("clip"),
    name: fields.type,
    assetId: "",
    start: 0,
    duration: still ? DEFAULT_STILL_SECONDS : fields.mediaDuration || DEFAULT_STILL_SECONDS,
    sourceStart: 0,
    mediaDuration: 0,
    volume: 1,
    text: "",
    transitionIn: null,
    ...fields,
  };
}

export const clipEnd = (clip: Clip): number => clip.start + clip.duration;

// Source seconds the clip plays in `duration` seconds of timeline (its speed or ramp).
export function sourceUsed(clip: Clip, duration = clip.duration): number {
  return sourceAt(clip.filters?.speedKeyframes ?? [], duration, clip.speed ?? 1);
}

// Timeline seconds the clip takes to play `source` seconds of its source.
export function lengthFor(clip: Clip, source: number): number {
  return timeFor(clip.filters?.speedKeyframes ?? [], source, clip.speed ?? 1);
}

const isRamped = (clip: Clip): boolean => (clip.filters?.speedKeyframes.length ?? 0) > 0;

export function timelineDuration(timeline: Timeline): number {
  let end = 0;
  for (const track of timeline.tracks) for (const clip of track.clips) end = Math.max(end, clipEnd(clip));
  return end;
}

export function acceptsClip(track: Track, type: ClipType): boolean {
  if (track.type === "video") return type === "video" || type === "image";
  if (track.type === "text") return type === "text";
  return type === "audio" || type === "video";
}

export function findClip(timeline: Timeline, clipId: string): { track: Track; clip: Clip; index: number } {
  for (const track of timeline.tracks) {
    const index = track.clips.findIndex((c) => c.id === clipId);
    if (index >= 0) return { track, clip: track.clips[index], index };
  }
  throw new TimelineError(`no clip ${clipId}`);
}

function findTrack(timeline: Timeline, trackId: string): Track {
  const track = timeline.tracks.find((t) => t.id === trackId);
  if (!track) throw new TimelineError(`no track ${trackId}`);
  return track;
}

function replaceTrack(timeline: Timeline, track: Track): Timeline {
  return { ...timeline, tracks: timeline.tracks.map((t) => (t.id === track.id ? track : t)) };
}

function sorted(clips: Clip[]): Clip[] {
  return [...clips].sort((a, b) => a.start - b.start);
}

// Clips may overlap only where the later one has a transition into it, by that transition's length.
function checkOverlaps(track: Track): void {
  const clips = sorted(track.clips);
  for (let i = 1; i < clips.length; i++) {
    const overlap = clipEnd(clips[i - 1]) - clips[i].start;
    const allowed = clips[i].transitionIn?.duration ?? 0;
    if (overlap > allowed + EPSILON) {
      throw new TimelineError(`"${clips[i].name}" would overlap "${clips[i - 1].name}" on ${track.name}`);
    }
  }
}

function withClips(track: Track, clips: Clip[]): Track {
  const next = { ...track, clips: sorted(clips) };
  checkOverlaps(next);
  return next;
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

export function addClip(timeline: Timeline, trackId: string, clip: Clip): Timeline {
  const track = findTrack(timeline, trackId);
  if (!acceptsClip(track, clip.type)) throw new TimelineError(`a ${clip.type} clip cannot go on ${track.name}`);
  if (clip.start < 0) throw new TimelineError("a clip cannot start before 0");
  if (clip.duration < MIN_CLIP_SECONDS) throw new TimelineError("clip too short");
  return replaceTrack(timeline, withClips(track, [...track.clips, { ...clip, start: round(clip.start) }]));
}

// First start >= `from` where a clip of `duration` fits on the track.
export function firstFreeStart(track: Track, from: number, duration: number): number {
  let start = Math.max(0, from);
  for (const clip of sorted(track.clips)) {
    if (start + duration <= clip.start + EPSILON) break;
    if (start < clipEnd(clip)) start = clipEnd(clip);
  }
  return round(start);
}

export function removeClip(timeline: Timeline, clipId: string): Timeline {
  const { track } = findClip(timeline, clipId);
  return replaceTrack(timeline, { ...track, clips: track.clips.filter((c) => c.id !== clipId) });
}

export function moveClip(timeline: Timeline, clipId: string, toTrackId: string, start: number): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  const target = findTrack(timeline, toTrackId);
  if (!acceptsClip(target, clip.type)) throw new TimelineError(`a ${clip.type} clip cannot go on ${target.name}`);
  // A transition belongs to the clip's old neighbour; moving drops it.
  const moved = { ...clip, start: round(Math.max(0, start)), transitionIn: track.id === target.id ? clip.transitionIn : null };
  const without = removeClip(timeline, clipId);
  const fresh = findTrack(without, toTrackId);
  return replaceTrack(without, withClips(fresh, [...fresh.clips, moved]));
}

// Replaces one clip (the track's overlap rule still holds).
export function updateClip(timeline: Timeline, clipId: string, change: (clip: Clip) => Clip): Timeline {
  const { track } = findClip(timeline, clipId);
  return replaceTrack(timeline, withClips(track, track.clips.map((c) => (c.id === clipId ? change(c) : c))));
}

// Drag the left edge to `newStart`: the source in-point moves with it, the end stays put. A
// ramped clip's ramp is cut with it (keyframes are keyed to the clip's start), so every kept frame
// plays the source it played before.
export function trimStart(timeline: Timeline, clipId: string, newStart: number): Timeline {
  return updateClip(timeline, clipId, (clip) => {
    const end = clipEnd(clip);
    const ramp = clip.filters?.speedKeyframes ?? [];
    // Extending the start back plays the source at the rate the clip starts with.
    const rate = ramp.length ? ramp[0].value : (clip.speed ?? 1);
    let start = Math.min(newStart, end - MIN_CLIP_SECONDS);
    if (clip.mediaDuration > 0) start = Math.max(start, clip.start - clip.sourceStart / rate); // not before source 0
    start = round(Math.max(0, start));
    const delta = start - clip.start;
    if (cutsEasedSegment(ramp, delta)) throw new TimelineError("trim a speed ramp at a keyframe or inside a linear segment");
    return retimeAnimations({
      ...clip,
      start,
      // A ramped clip's length is derived (not whole milliseconds): its end stays exactly put.
      duration: ramp.length ? end - start : round(end - start),
      sourceStart: clip.mediaDuration > 0 ? round(clip.sourceStart + sourceUsed(clip, delta)) : 0,
    }, round(delta));
  });
}

// Drag the right edge to `newEnd`: bounded by the end of the source media.
export function trimEnd(timeline: Timeline, clipId: string, newEnd: number): Timeline {
  return updateClip(timeline, clipId, (clip) => {
    let duration = Math.max(MIN_CLIP_SECONDS, newEnd - clip.start);
    if (clip.mediaDuration > 0) duration = Math.min(duration, lengthFor(clip, clip.mediaDuration - clip.sourceStart));
    return { ...clip, duration: round(duration) };
  });
}

export function splitClip(timeline: Timeline, clipId: string, at: number): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  if (at <= clip.start + MIN_CLIP_SECONDS - EPSILON || at >= clipEnd(clip) - MIN_CLIP_SECONDS + EPSILON) {
    throw new TimelineError("the playhead must be inside the clip to split it");
  }
  const head = round(at - clip.start);
  if (cutsEasedSegment(clip.filters?.speedKeyframes ?? [], head)) {
    throw new TimelineError("split a speed ramp at a keyframe or inside a linear segment");
  }
  const left: Clip = retimeAnimations({ ...clip, duration: head }, 0, head);
  const right: Clip = retimeAnimations({
    ...clip,
    id: newId("clip"),
    start: round(at),
    duration: isRamped(clip) ? clip.duration - head : round(clip.duration - head),
    sourceStart: clip.mediaDuration > 0 ? round(clip.sourceStart + sourceUsed(clip, head)) : 0,
    transitionIn: null,
  }, head, round(clip.duration - head));
  return replaceTrack(timeline, withClips(track, [...track.clips.filter((c) => c.id !== clipId), left, right]));
}

// Ripple delete: remove the clip and close the time it held, moving every later clip on its track
// left by it (gaps after it stay). The time it held starts where it started, or where the previous
// clip ends when it had a transition in. A next clip that blended into it loses that transition
// and starts right there.
export function rippleDelete(timeline: Timeline, clipId: string): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  const clips = sorted(track.clips);
  const index = clips.findIndex((c) => c.id === clipId);
  const previous = index > 0 ? clips[index - 1] : null;
  const next = clips[index + 1];
  if (!next) return removeClip(timeline, clipId);
  const freed = clip.transitionIn && previous ? clipEnd(previous) : clip.start;
  const shift = next.transitionIn ? next.start - freed : clipEnd(clip) - freed;
  const rest = clips.filter((c) => c.id !== clipId).map((c, i) => {
    if (i < index) return c;
    return { ...c, start: round(c.start - shift), transitionIn: c.id === next.id ? null : c.transitionIn };
  });
  return replaceTrack(timeline, withClips(track, rest));
}

// Paste a copy of `clip` on the track at the first place from `at` where it fits.
export function pasteClip(timeline: Timeline, trackId: string, clip: Clip, at: number): Timeline {
  const track = findTrack(timeline, trackId);
  const copy: Clip = { ...clip, id: newId("clip"), transitionIn: null, start: firstFreeStart(track, at, clip.duration) };
  return addClip(timeline, trackId, copy);
}

export function setClipVolume(timeline: Timeline, clipId: string, volume: number): Timeline {
  return updateClip(timeline, clipId, (clip) => ({ ...clip, volume: Math.min(4, Math.max(0, volume)) }));
}

export function setClipText(timeline: Timeline, clipId: string, text: string): Timeline {
  return updateClip(timeline, clipId, (clip) => {
    if (clip.type !== "text") throw new TimelineError("only text clips have text");
    return { ...clip, text, name: text.slice(0, 24) || "text" };
  });
}

export function setTrackVolume(timeline: Timeline, trackId: string, volume: number): Timeline {
  const track = findTrack(timeline, trackId);
  return replaceTrack(timeline, { ...track, volume: Math.min(4, Math.max(0, volume)) });
}

export function setTrackFlags(timeline: Timeline, trackId: string, flags: { muted?: boolean; hidden?: boolean }): Timeline {
  const track = findTrack(timeline, trackId);
  return replaceTrack(timeline, { ...track, ...flags });
}

export function addTrack(timeline: Timeline, type: TrackType): Timeline {
  const count = timeline.tracks.filter((t) => t.type === type).length + 1;
  const label = type === "video" ? "Video" : type === "audio" ? "Audio" : "Text";
  return { ...timeline, tracks: [...timeline.tracks, makeTrack(type, `${label} ${count}`)] };
}

// A transition into a clip makes it start `duration` before the previous clip ends; the clips
// after it on the track shift by the same amount so nothing else changes.
export function setTransition(timeline: Timeline, clipId: string, transition: TransitionIn | null): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  const clips = sorted(track.clips);
  const index = clips.findIndex((c) => c.id === clipId);
  const previous = index > 0 ? clips[index - 1] : null;
  if (transition && !previous) throw new TimelineError("a transition needs a previous clip on the same track");
  if (transition && previous) {
    const limit = Math.min(previous.duration, clip.duration);
    if (transition.duration <= 0 || transition.duration > limit + EPSILON) {
      throw new TimelineError(`transition length must be within (0, ${limit.toFixed(2)}] s`);
    }
  }
  const oldOverlap = clip.transitionIn?.duration ?? 0;
  const newStart = previous
    ? transition
      ? clipEnd(previous) - transition.duration
      : Math.max(clip.start + oldOverlap, clipEnd(previous))
    : clip.start;
  const shift = round(newStart - clip.start);
  const next = clips.map((c, i) => {
    if (i < index) return c;
    if (i === index) return { ...c, start: round(newStart), transitionIn: transition };
    return { ...c, start: round(c.start + shift) };
  });
  return replaceTrack(timeline, withClips(track, next));
}

// ---- snapping ----------------------------------------------------------------------------------

export function snapPoints(timeline: Timeline, excludeClipId: string | null, playhead: number): number[] {
  const points = [0, playhead];
  for (const track of timeline.tracks) {
    for (const clip of track.clips) {
      if (clip.id === excludeClipId) continue;
      points.push(clip.start, clipEnd(clip));
    }
  }
  return points;
}

// The nearest point within `threshold` seconds, else the value itself.
export function snap(value: number, points: number[], threshold: number): number {
  let best = value;
  let distance = threshold + EPSILON;
  for (const point of points) {
    const d = Math.abs(point - value);
    if (d < distance) {
      best = point;
      distance = d;
    }
  }
  return best;
}

// Snap a moving clip by whichever of its edges is closer to a snap point.
export function snapClipStart(start: number, duration: number, points: number[], threshold: number): number {
  const byStart = snap(start, points, threshold);
  const byEnd = snap(start + duration, points, threshold) - duration;
  const startMoved = Math.abs(byStart - start);
  const endMoved = Math.abs(byEnd - start);
  if (byStart !== start && (byEnd === start || startMoved <= endMoved)) return byStart;
  if (byEnd !== start) return Math.max(0, byEnd);
  return start;
}

// ---- undo / redo -------------------------------------------------------------------------------

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
}

export const HISTORY_LIMIT = 200;

export const history = <T,>(present: T): History<T> => ({ past: [], present, future: [] });

export function commit<T>(h: History<T>, next: T): History<T> {
  if (next === h.present) return h;
  return { past: [...h.past, h.present].slice(-HISTORY_LIMIT), present: next, future: [] };
}

export function undo<T>(h: History<T>): History<T> {
  if (h.past.length === 0) return h;
  return { past: h.past.slice(0, -1), present: h.past[h.past.length - 1], future: [h.present, ...h.future] };
}

export function redo<T>(h: History<T>): History<T> {
  if (h.future.length === 0) return h;
  return { past: [...h.past, h.present], present: h.future[0], future: h.future.slice(1) };
}

// ---- proto conversion --------------------------------------------------------------------------

const TRACK_KINDS: Record<TrackType, TrackKind> = {
  video: TrackKind.VIDEO,
  text: TrackKind.TEXT,
  audio: TrackKind.AUDIO,
};

export function toProto(timeline: Timeline): TimelineProto {
  return create(TimelineSchema, {
    canvas: {
      width: timeline.canvas.width,
      height: timeline.canvas.height,
      fps: timeline.canvas.fps,
      backgroundColor: timeline.canvas.background,
      durationSeconds: timeline.canvas.duration ?? 0,
    },
    mix: timeline.mix,
    tracks: timeline.tracks.map((track) =>
      create(TrackSchema, {
        id: track.id,
        kind: TRACK_KINDS[track.type],
        name: track.name,
        muted: track.muted,
        hidden: track.hidden,
        volume: track.volume === 1 ? undefined : track.volume,
        ducking: track.ducking,
        clips: sorted(track.clips).map(clipToProto),
      }),
    ),
  });
}

function sameKeyframes(a: ClipFilters | undefined, b: ClipFilters | undefined): boolean {
  const [x, y] = [a?.speedKeyframes ?? [], b?.speedKeyframes ?? []];
  return x.length === y.length && x.every((k, i) => equals(KeyframeSchema, k, y[i]));
}

// The clip over the proto it came from: every field the editor models is written, the rest kept.
function clipToProto(clip: Clip): ClipProto {
  const out = clip.origin ? clone(ClipSchema, clip.origin.proto) : create(ClipSchema);
  const timed = clip.type === "video" || clip.type === "audio";
  out.id = clip.id;
  out.assetId = clip.assetId;
  out.startSeconds = clip.start;
  out.volume = clip.volume === 1 ? undefined : clip.volume;
  out.speed = clip.speed;
  out.filters = clip.filters;
  out.transform = clip.transform;
  const origin = clip.origin;
  const sameTiming = origin !== undefined && origin.duration === clip.duration && origin.sourceStart === clip.sourceStart
    && origin.proto.speed === clip.speed && sameKeyframes(origin.proto.filters, clip.filters);
  if (!sameTiming) {
    out.sourceStartSeconds = timed ? clip.sourceStart : 0;
    // At speed 1 the source end is the clip's whole-millisecond end; at another speed or on a ramp
    // the render derives the clip's length from the source range, so the end is kept to the
    // nanosecond (float noise off): one rounded to the millisecond would lengthen or shorten the
    // clip by up to 0.5 ms / rate, onto its neighbour (the render allows 1 µs of overlap).
    const sourceEnd = clip.sourceStart + sourceUsed(clip);
    const rateChanged = isRamped(clip) || (clip.speed ?? 1) !== 1;
    out.sourceEndSeconds = !timed ? 0 : rateChanged ? Math.round(sourceEnd * 1e9) / 1e9 : round(sourceEnd);
    out.durationSeconds = timed ? 0 : clip.duration;
  }
  if (clip.type === "text") {
    // The style as saved (font, outline, alignment...), the text as edited.
    if (out.text) out.text.text = clip.text;
    else out.text = create(TextStyleSchema, { text: clip.text, fontSize: 48, box: true, boxColor: "#00000088", boxPadding: 12 });
  }
  const t = clip.transitionIn;
  out.transitionIn = t
    ? create(TransitionSchema, { kind: t.kind, name: t.name ?? "", durationSeconds: t.duration, easing: t.easing ?? 0 })
    : undefined;
  return out;
}

export interface AssetFacts {
  name: string;
  type: ClipType;
  duration: number; // 0 for images
}

// Rebuild the document from a saved project; `assets` supplies what the proto does not keep.
export function fromProto(proto: TimelineProto, assets: Map<string, AssetFacts>): Timeline {
  const types: Record<number, TrackType> = { [TrackKind.VIDEO]: "video", [TrackKind.TEXT]: "text", [TrackKind.AUDIO]: "audio" };
  return {
    canvas: {
      width: proto.canvas?.width || 640,
      height: proto.canvas?.height || 360,
      fps: proto.canvas?.fps || 24,
      background: proto.canvas?.backgroundColor || "#000000",
      ...(proto.canvas?.durationSeconds ? { duration: proto.canvas.durationSeconds } : {}),
    },
    ...(proto.mix ? { mix: proto.mix } : {}),
    tracks: proto.tracks.map((t) => {
      const type = types[t.kind] ?? "video";
      return {
        id: t.id || newId("track"),
        type,
        name: t.name || type,
        muted: t.muted,
        hidden: t.hidden,
        volume: t.volume ?? 1,
        ...(t.ducking ? { ducking: t.ducking } : {}),
        clips: t.clips.map((c) => clipFromProto(c, type, assets)),
      };
    }),
  };
}

// One saved (or assistant-proposed) clip as an editor clip on a track of `trackType`.
export function clipFromProto(c: ClipProto, trackType: TrackType, assets: Map<string, AssetFacts>): Clip {
  const facts = assets.get(c.assetId);
  const fallback: ClipType = trackType === "audio" ? "audio" : c.sourceEndSeconds > 0 ? "video" : "image";
  const clipType: ClipType = c.text ? "text" : (facts?.type ?? fallback);
  const timed = clipType === "video" || clipType === "audio";
  const rate = { filters: c.filters, speed: c.speed } as Clip;
  let exact: number;
  if (!timed) exact = c.durationSeconds || DEFAULT_STILL_SECONDS;
  else if (c.sourceEndSeconds > 0) exact = lengthFor(rate, c.sourceEndSeconds - c.sourceStartSeconds);
  else if (c.durationSeconds > 0) exact = c.durationSeconds; // a ramp given its length
  // An open-ended source (source_end 0) plays to the end of the media.
  else exact = lengthFor(rate, (facts?.duration ?? 0) - c.sourceStartSeconds);
  if (!(exact > 0)) exact = timed ? MIN_CLIP_SECONDS : DEFAULT_STILL_SECONDS;
  // The document keeps whole milliseconds, except where the length is derived (a ramp, an
  // open-ended source): rounding those would change the source range it plays. The saved trim
  // is written back as is only while the length is the exact one it implies.
  const duration = isRamped(rate) || (timed && !c.sourceEndSeconds) ? exact : round(exact);
  const sourceStart = timed ? c.sourceStartSeconds : 0;
  const t = c.transitionIn;
  return {
    id: c.id || newId("clip"),
    type: clipType,
    name: c.text?.text.slice(0, 24) || facts?.name || clipType,
    assetId: c.assetId,
    start: c.startSeconds,
    duration,
    sourceStart,
    mediaDuration: timed ? facts?.duration || sourceStart + sourceUsed(rate, duration) : 0,
    volume: c.volume ?? 1,
    text: c.text?.text ?? "",
    transitionIn:
      t && (t.kind !== TransitionKind.UNSPECIFIED || t.name)
        ? { kind: t.kind, duration: t.durationSeconds, ...(t.name ? { name: t.name } : {}), ...(t.easing ? { easing: t.easing } : {}) }
        : null,
    ...(c.filters ? { filters: c.filters } : {}),
    ...(c.transform ? { transform: c.transform } : {}),
    ...(c.speed !== undefined ? { speed: c.speed } : {}),
    origin: { proto: c, duration: exact, sourceStart },
  };
}
