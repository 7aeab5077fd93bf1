import { describe, expect, it } from "vitest";
import { Easing, TransitionKind } from "../gen/viarte/render/v1/timeline_pb";
import { addClip, emptyTimeline, findClip, makeClip, toProto } from "./model";
import { pickTransition, transitionMiddle, transitionName } from "./transitions";

function cut() {
  const a = makeClip({ id: "a", type: "video", assetId: "v", mediaDuration: 4, duration: 4 });
  const b = makeClip({ id: "b", type: "video", assetId: "v", start: 4, mediaDuration: 4, duration: 4 });
  return addClip(addClip(emptyTimeline(), "v1", a), "v1", b);
}

describe("transitions by name", () => {
  it("saves enum names as their kind and other names by name, keeping length and easing", () => {
    let tl = pickTransition(cut(), "b", "wipeleft");
    expect(findClip(tl, "b").clip.start).toBe(3.5);
    tl = pickTransition(tl, "b", "wipeleft", { duration: 1, easing: Easing.EASE_OUT });
    let saved = toProto(tl).tracks[0].clips[1].transitionIn!;
    expect([saved.kind, saved.name, saved.durationSeconds, saved.easing]).toEqual([TransitionKind.WIPE_LEFT, "", 1, Easing.EASE_OUT]);
    tl = pickTransition(tl, "b", "circleopen");
    saved = toProto(tl).tracks[0].clips[1].transitionIn!;
    expect([saved.kind, saved.name, saved.durationSeconds, saved.easing]).toEqual([TransitionKind.UNSPECIFIED, "circleopen", 1, Easing.EASE_OUT]);
    expect(transitionName(findClip(tl, "b").clip.transitionIn)).toBe("circleopen");
    expect(transitionMiddle(tl, "b")).toBe(3.5);
    tl = pickTransition(tl, "b", "");
    expect(findClip(tl, "b").clip.transitionIn).toBeNull();
    expect(findClip(tl, "b").clip.start).toBe(4);
  });
});
