import { describe, expect, it } from "vitest";
import { addClip, emptyTimeline, findClip, makeClip, pasteClip, rippleDelete, setTransition, type Timeline } from "./model";
import { TransitionKind } from "../gen/viarte/render/v1/timeline_pb";

function three(): Timeline {
  let tl = emptyTimeline();
  tl = addClip(tl, "v1", makeClip({ id: "a", type: "video", start: 0, duration: 2, mediaDuration: 10 }));
  tl = addClip(tl, "v1", makeClip({ id: "b", type: "video", start: 2, duration: 3, mediaDuration: 10 }));
  tl = addClip(tl, "v1", makeClip({ id: "c", type: "video", start: 6, duration: 1, mediaDuration: 10 }));
  return tl;
}

const starts = (tl: Timeline) => tl.tracks[0].clips.map((c) => [c.id, c.start]);

describe("rippleDelete", () => {
  it("closes the gap: later clips move left by what was freed, gaps after it kept", () => {
    expect(starts(rippleDelete(three(), "b"))).toEqual([["a", 0], ["c", 3]]);
    expect(starts(rippleDelete(three(), "a"))).toEqual([["b", 0], ["c", 4]]);
    expect(starts(rippleDelete(three(), "c"))).toEqual([["a", 0], ["b", 2]]);
  });
  it("a removed clip's transition gives its overlap back; the next clip's transition goes", () => {
    let tl = setTransition(three(), "b", { kind: TransitionKind.CROSSFADE, duration: 0.5 }); // b at 1.5, c at 5.5
    expect(starts(tl)).toEqual([["a", 0], ["b", 1.5], ["c", 5.5]]);
    expect(starts(rippleDelete(tl, "b"))).toEqual([["a", 0], ["c", 3]]);
    tl = rippleDelete(tl, "a");
    expect(starts(tl)).toEqual([["b", 0], ["c", 4]]);
    expect(findClip(tl, "b").clip.transitionIn).toBeNull();
  });
});

it("a next clip that blended into the removed one starts where it started, without its transition", () => {
  const tl = setTransition(three(), "c", { kind: TransitionKind.CROSSFADE, duration: 0.5 }); // c at 4.5
  const after = rippleDelete(tl, "b");
  expect(starts(after)).toEqual([["a", 0], ["c", 2]]);
  expect(findClip(after, "c").clip.transitionIn).toBeNull();
});

describe("pasteClip", () => {
  it("pastes a copy with a new id at the first free place from the playhead", () => {
    const tl = three();
    const pasted = pasteClip(tl, "v1", findClip(tl, "b").clip, 2.5);
    const clips = pasted.tracks[0].clips;
    expect(clips).toHaveLength(4);
    const copy = clips.find((c) => !["a", "b", "c"].includes(c.id))!;
    expect([copy.start, copy.duration, copy.sourceStart]).toEqual([7, 3, 0]);
  });
  it("refuses a track of the wrong kind", () => {
    const tl = three();
    expect(() => pasteClip(tl, "t1", findClip(tl, "a").clip, 0)).toThrow(/cannot go on/);
  });
});
