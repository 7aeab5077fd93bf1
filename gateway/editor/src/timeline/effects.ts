// Effects in the editor's document (issue 18): a clip's audio EQ preset and colour LUT, a track's
// music ducking, and the smart edit (ProposeEdit) — the request built from the timeline and its
// answer applied as one change (one undo step). Pure functions, like model.ts; TimelineError for
// what the user asked that cannot be.

import { create } from "@bufbuild/protobuf";
import type { ProposeEditRequest } from "../gen/viarte/render/v1/render_pb";
import { ProposeEditRequestSchema } from "../gen/viarte/render/v1/render_pb";
import { AudioDuckingSchema, ClipFiltersSchema, type ClipFilters, type Timeline as TimelineProto } from "../gen/viarte/render/v1/timeline_pb";
import { type AssetFacts, type Clip, findClip, fromProto, type Timeline, TimelineError } from "./model";

// ListCapabilities.audio_eq_presets, with the labels the inspector shows.
export const EQ_PRESETS: [string, string][] = [
  ["", "None"],
  ["voice", "Voice"],
  ["warm", "Warm"],
  ["bright", "Bright"],
  ["bass_boost", "Bass boost"],
  ["low_cut", "Low cut"],
  ["high_cut", "High cut"],
  ["telephone", "Telephone"],
];

function withFilters(timeline: Timeline, clipId: string, change: (f: ClipFilters) => void, check: (clip: Clip) => void): Timeline {
  const { track, clip } = findClip(timeline, clipId);
  check(clip);
  const filters = create(ClipFiltersSchema, clip.filters ?? {});
  change(filters);
  const next: Clip = { ...clip, filters };
  return { ...timeline, tracks: timeline.tracks.map((t) => (t.id === track.id ? { ...t, clips: t.clips.map((c) => (c.id === clipId ? next : c)) } : t)) };
}

export function setAudioEq(timeline: Timeline, clipId: string, preset: string): Timeline {
  if (!EQ_PRESETS.some(([name]) => name === preset)) throw new TimelineError(`unknown EQ preset ${preset}`);
  return withFilters(timeline, clipId, (f) => { f.audioEq = preset; }, (clip) => {
    if (clip.type !== "audio" && clip.type !== "video") throw new TimelineError("EQ is for clips with sound");
  });
}

// "" removes the LUT.
export function setLut(timeline: Timeline, clipId: string, lutAssetId: string): Timeline {
  return withFilters(timeline, clipId, (f) => { f.lutAssetId = lutAssetId; }, (clip) => {
    if (clip.type !== "video" && clip.type !== "image") throw new TimelineError("a LUT grades video and image clips");
  });
}

// Ducks `trackId`'s sound under `voiceTrackId`'s; null turns ducking off.
export function setDucking(timeline: Timeline, trackId: string, voiceTrackId: string | null): Timeline {
  const track = timeline.tracks.find((t) => t.id === trackId);
  if (!track) throw new TimelineError(`no track ${trackId}`);
  if (voiceTrackId !== null) {
    const voice = timeline.tracks.find((t) => t.id === voiceTrackId);
    if (!voice || voice.id === trackId) throw new TimelineError("duck under another track");
    if (voice.ducking) throw new TimelineError("a ducked track cannot be the voice");
    if (track.type === "text" || voice.type === "text") throw new TimelineError("ducking is between tracks with sound");
  }
  const ducking = voiceTrackId === null ? undefined : create(AudioDuckingSchema, { ...(track.ducking ?? {}), voiceTrackId });
  return { ...timeline, tracks: timeline.tracks.map((t) => (t.id === trackId ? { ...t, ducking } : t)) };
}

// "Auto-edit to music": the video clips' assets in timeline order (each once) cut to the first
// audio clip's asset, on the project's canvas.
export function autoEditRequest(timeline: Timeline, options: { transitions?: boolean; matchColors?: boolean } = {}): ProposeEditRequest {
  const videos = timeline.tracks
    .filter((t) => t.type === "video")
    .flatMap((t) => t.clips)
    .filter((c) => c.type === "video")
    .sort((a, b) => a.start - b.start);
  const clipAssetIds = [...new Set(videos.map((c) => c.assetId))];
  if (clipAssetIds.length === 0) throw new TimelineError("add video clips to cut to the music");
  const music = musicClip(timeline);
  const c = timeline.canvas;
  return create(ProposeEditRequestSchema, {
    clipAssetIds,
    musicAssetId: music.assetId,
    canvas: { width: c.width, height: c.height, fps: c.fps, backgroundColor: c.background },
    transitions: options.transitions ?? true,
    matchColors: options.matchColors ?? false,
  });
}

// The music both smart edits follow: the first clip on an audio track.
export function musicClip(timeline: Timeline): Clip {
  const music = timeline.tracks.filter((t) => t.type === "audio").flatMap((t) => t.clips).sort((a, b) => a.start - b.start)[0];
  if (!music) throw new TimelineError("put the music on an audio track first");
  return music;
}

// AnalyzeMedia's beats are in the music asset's own time; on the timeline they are where its clip
// plays them (only the beats the clip plays).
export function beatsOnTimeline(music: Clip, beatSeconds: readonly number[]): number[] {
  const end = music.start + music.duration;
  return beatSeconds.map((b) => music.start + (b - music.sourceStart)).filter((t) => t >= music.start && t <= end);
}

// "Snap to beats": the user's own cut, kept, with every cut between clips on a video track moved
// to the nearest beat the clip before it can reach (it is trimmed, or extended within its source,
// and stays at least MIN_SNAPPED long); what follows on the track moves with it, gaps and
// transition overlaps kept. One change, so one undo. `moved` counts the cuts that moved.
const MIN_SNAPPED = 0.1;
export function snapToBeats(timeline: Timeline, beats: readonly number[]): { timeline: Timeline; moved: number } {
  if (beats.length === 0) throw new TimelineError("no beat found in the music");
  let moved = 0;
  const tracks = timeline.tracks.map((track) => {
    if (track.type !== "video" || track.clips.length < 2) return track;
    const clips = track.clips.map((c) => ({ ...c }));
    for (let i = 0; i < clips.length - 1; i++) {
      const clip = clips[i];
      const end = clip.start + clip.duration;
      const overlap = Math.max(0, end - clips[i + 1].start); // the next clip's transition
      const lowest = clip.start + MIN_SNAPPED + overlap;
      const highest = clip.mediaDuration > 0 ? clip.start + clip.mediaDuration - clip.sourceStart : Infinity;
      let best: number | null = null;
      for (const b of beats) {
        if (b >= lowest && b <= highest && (best === null || Math.abs(b - end) < Math.abs(best - end))) best = b;
      }
      if (best === null || Math.abs(ms(best) - end) < 0.0005) continue;
      const delta = ms(best) - end;
      clip.duration += delta;
      for (let j = i + 1; j < clips.length; j++) clips[j].start += delta;
      moved++;
    }
    return { ...track, clips: clips.map(onGrid) };
  });
  return { timeline: { ...timeline, tracks }, moved };
}

// The proposal replaces the tracks (the project keeps its canvas); as one change, so one undo
// brings the previous timeline back.
export function applyProposal(timeline: Timeline, proposal: TimelineProto, facts: Map<string, AssetFacts>): Timeline {
  const proposed = fromProto(proposal, facts);
  if (!proposed.tracks.some((t) => t.clips.length > 0)) throw new TimelineError("the proposal is empty");
  return { ...timeline, tracks: proposed.tracks.map((t) => ({ ...t, clips: t.clips.map(onGrid) })) };
}

// The document keeps times in whole milliseconds (model.ts rounds lengths when it saves); cuts on
// beats are not. Starts and ends are rounded each on their own, so a cut stays exactly where the
// previous clip ends (no 1 ms overlap the service would refuse) and a transition keeps the overlap.
const ms = (seconds: number): number => Math.round(seconds * 1000) / 1000;
function onGrid(clip: Clip): Clip {
  const start = ms(clip.start);
  const duration = ms(ms(clip.start + clip.duration) - start);
  const transitionIn = clip.transitionIn ? { ...clip.transitionIn, duration: ms(clip.transitionIn.duration) } : null;
  return { ...clip, start, duration, transitionIn };
}
