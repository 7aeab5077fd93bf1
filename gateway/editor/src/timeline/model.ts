// The editor's timeline document: plain immutable data and pure operations (no React, no I/O),
// converted to and from the viarte.render.v1.Timeline message that the render service reads.
//
// Every operation returns a new Timeline or throws TimelineError (shown to the user as is).
// Times are seconds. A clip occupies [start, start + duration) on its track; video and audio clips
// play their source from sourceStart for `duration` seconds (speed 1).

import { create } from "@bufbuild/protobuf";
import {
  type AudioDucking,
  type Clip as ClipProto,
  type ClipFilters,
  ClipSchema,
  TextStyleSchema,
  TimelineSchema,
  TrackKind,
  TrackSchema,
  TransitionKind,
  TransitionSchema,
  type Timeline as TimelineProto,
} from "../gen/viarte/render/v1/timeline_pb";

export type TrackType = "video" | "text" | "audio";
export type ClipType = "video" | "image" | "audio" | "text";

export interface TransitionIn {
  kind: TransitionKind;
  duration: number;
  // An xfade transition by name (ListCapabilities), e.g. from ProposeEdit; wins over `kind`.
  name?: string;
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
  // Looks, audio EQ, LUT...: the proto message kept whole (timeline/effects.ts edits it).
  filters?: ClipFilters;
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
}

export interface Timeline {
  canvas: Canvas;
  tracks: Track[]; // z-order: tracks[0] is the bottom layer
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

function updateClip(timeline: Timeline, clipId: string, change: (clip: Clip) => Clip): Timeline {
  const { track } = findClip(timeline, clipId);
  return replaceTrack(timeline, withClips(track, track.clips.map((c) => (c.id === clipId ? change(c) : c))));
}

// Drag the left edge to `newStart`: the source in-point moves with it, the end stays put.
export function trimStart(timeline: Timeline, clipId: string, newStart: number): Timeline {
  return updateClip(timeline, clipId, (clip) => {
    const end = clipEnd(clip);
    let start = Math.min(newStart, end - MIN_CLIP_SECONDS);
    if (clip.mediaDuration > 0) start = Math.max(start, clip.start - clip.sourceStart); // not before source 0
    start = Math.max(0, start);
    const delta = start - clip.start;
    return {
      ...clip,
      start: round(start),
      duration: round(end - start),
      sourceStart: clip.mediaDuration > 0 ? round(clip.sourceStart + delta) : 0,
    };
  });
}

// Drag the right edge to `newEnd`: bounded by the end of the source media.
export function trimEnd(timeline: Timeline, clipId: string, newEnd: number): Timeline {
  return updateClip(timeline, clipId, (clip) => {
    let duration = Math.max(MIN_CLIP_SECONDS, newEnd - clip.start);
    if (clip.mediaDuration > 0) duration = Math.min(duration, clip.mediaDuration - clip.sourceStart);
    return { ...clip, duration: round(duration) };
  });
}

export function splitClip(timeline: Timeline, clipId: string, at: number): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  if (at <= clip.start + MIN_CLIP_SECONDS - EPSILON || at >= clipEnd(clip) - MIN_CLIP_SECONDS + EPSILON) {
    throw new TimelineError("the playhead must be inside the clip to split it");
  }
  const head = round(at - clip.start);
  const left: Clip = { ...clip, duration: head };
  const right: Clip = {
    ...clip,
    id: newId("clip"),
    start: round(at),
    duration: round(clip.duration - head),
    sourceStart: clip.mediaDuration > 0 ? round(clip.sourceStart + head) : 0,
    transitionIn: null,
  };
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

export function history<T>(present: T): History<T> {
  return { past: [], present, future: [] };
}

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
    },
    tracks: timeline.tracks.map((track) =>
      create(TrackSchema, {
        id: track.id,
        kind: TRACK_KINDS[track.type],
        name: track.name,
        muted: track.muted,
        hidden: track.hidden,
        volume: track.volume === 1 ? undefined : track.volume,
        ducking: track.ducking,
        clips: sorted(track.clips).map((clip) => {
          const timed = clip.type === "video" || clip.type === "audio";
          return create(ClipSchema, {
            id: clip.id,
            assetId: clip.assetId,
            startSeconds: clip.start,
            sourceStartSeconds: timed ? clip.sourceStart : 0,
            sourceEndSeconds: timed ? round(clip.sourceStart + clip.duration) : 0,
            durationSeconds: timed ? 0 : clip.duration,
            volume: clip.volume === 1 ? undefined : clip.volume,
            text: clip.type === "text" ? create(TextStyleSchema, { text: clip.text, fontSize: 48, box: true, boxColor: "#00000088", boxPadding: 12 }) : undefined,
            transitionIn: clip.transitionIn
              ? create(TransitionSchema, { kind: clip.transitionIn.name ? TransitionKind.UNSPECIFIED : clip.transitionIn.kind, name: clip.transitionIn.name ?? "", durationSeconds: clip.transitionIn.duration })
              : undefined,
            filters: clip.filters,
          });
        }),
      }),
    ),
  });
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
    },
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
  const duration = timed ? round(c.sourceEndSeconds - c.sourceStartSeconds) : c.durationSeconds;
  return {
    id: c.id || newId("clip"),
    type: clipType,
    name: c.text?.text.slice(0, 24) || facts?.name || clipType,
    assetId: c.assetId,
    start: c.startSeconds,
    // An open-ended source (source_end 0) plays to the end of the media.
    duration: duration > 0 ? duration : timed ? Math.max(MIN_CLIP_SECONDS, (facts?.duration ?? 0) - c.sourceStartSeconds) : DEFAULT_STILL_SECONDS,
    sourceStart: timed ? c.sourceStartSeconds : 0,
    mediaDuration: timed ? facts?.duration || c.sourceEndSeconds : 0,
    volume: c.volume ?? 1,
    text: c.text?.text ?? "",
    transitionIn:
      c.transitionIn && (c.transitionIn.kind !== TransitionKind.UNSPECIFIED || c.transitionIn.name)
        ? { kind: c.transitionIn.kind, duration: c.transitionIn.durationSeconds, ...(c.transitionIn.name ? { name: c.transitionIn.name } : {}) }
        : null,
    ...(c.filters ? { filters: c.filters } : {}),
  };
}
