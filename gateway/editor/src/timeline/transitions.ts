// Transitions picked by name from RenderService.ListCapabilities (ffmpeg xfade's names). The names
// the TransitionKind enum has are saved as that kind (what older projects and the assistant use);
// any other listed name is saved as Transition.name. Pure, like model.ts.

import { type Easing, TransitionKind } from "../gen/viarte/render/v1/timeline_pb";
import { findClip, setTransition, type Timeline, type TransitionIn } from "./model";

// services/render/timeline/looks.py's kind ↔ xfade name table.
export const KIND_NAMES: [TransitionKind, string][] = [
  [TransitionKind.CROSSFADE, "fade"],
  [TransitionKind.FADE_BLACK, "fadeblack"],
  [TransitionKind.WIPE_LEFT, "wipeleft"],
  [TransitionKind.WIPE_RIGHT, "wiperight"],
  [TransitionKind.WIPE_UP, "wipeup"],
  [TransitionKind.WIPE_DOWN, "wipedown"],
  [TransitionKind.SLIDE_LEFT, "slideleft"],
  [TransitionKind.SLIDE_RIGHT, "slideright"],
  [TransitionKind.SLIDE_UP, "slideup"],
  [TransitionKind.SLIDE_DOWN, "slidedown"],
];
// What any ffmpeg with xfade has, shown until (or if) ListCapabilities answers.
export const FALLBACK_NAMES = KIND_NAMES.map(([, name]) => name);

export function transitionName(t: TransitionIn | null): string {
  if (!t) return "";
  return t.name || (KIND_NAMES.find(([kind]) => kind === t.kind)?.[1] ?? "");
}

// Sets (name "" removes) the clip's transition in, keeping its length (0.5 s for a new one) and easing.
export function pickTransition(timeline: Timeline, clipId: string, name: string, change: { duration?: number; easing?: Easing } = {}): Timeline {
  if (!name) return setTransition(timeline, clipId, null);
  const old = findClip(timeline, clipId).clip.transitionIn;
  const kind = KIND_NAMES.find(([, n]) => n === name)?.[0];
  const easing = change.easing ?? old?.easing;
  const next: TransitionIn = {
    kind: kind ?? TransitionKind.UNSPECIFIED,
    duration: change.duration ?? old?.duration ?? 0.5,
    ...(kind === undefined ? { name } : {}),
    ...(easing ? { easing } : {}),
  };
  return setTransition(timeline, clipId, next);
}

// The timeline time in the middle of the clip's transition in (the preview's frame).
export function transitionMiddle(timeline: Timeline, clipId: string): number | null {
  const { clip } = findClip(timeline, clipId);
  return clip.transitionIn ? clip.start + clip.transitionIn.duration / 2 : null;
}
