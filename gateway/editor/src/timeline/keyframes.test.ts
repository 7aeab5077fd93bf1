import { describe, expect, it } from "vitest";
import { Easing } from "../gen/viarte/render/v1/timeline_pb";
import {
  addKeyframe,
  constantOf,
  deleteKeyframe,
  keyframesOf,
  moveKeyframe,
  property,
  propertiesFor,
  setKeyframeEasing,
  setKeyframeValue,
  valueOf,
} from "./keyframes";
import { addClip, emptyTimeline, findClip, makeClip, type Timeline, TimelineError, toProto } from "./model";

function twoClips(): Timeline {
  const a = makeClip({ id: "a", type: "video", assetId: "v", mediaDuration: 10, duration: 4 });
  const b = makeClip({ id: "b", type: "video", assetId: "v", start: 5, mediaDuration: 10, duration: 2 });
  return addClip(addClip(emptyTimeline(), "v1", a), "v1", b);
}
const clip = (tl: Timeline, id = "a") => findClip(tl, id).clip;

describe("keyframe lanes", () => {
  it("adds a keyframe holding the current value, then moves and edits it", () => {
    let tl = addKeyframe(twoClips(), "a", "opacity", 0);
    tl = addKeyframe(tl, "a", "opacity", 2);
    expect(keyframesOf(clip(tl), property("opacity")).map((k) => [k.timeSeconds, k.value])).toEqual([[0, 1], [2, 1]]);
    tl = setKeyframeValue(tl, "a", "opacity", 0, 0);
    tl = moveKeyframe(tl, "a", "opacity", 1, 1);
    expect(valueOf(clip(tl), property("opacity"), 0.5)).toBeCloseTo(0.5);
    tl = setKeyframeEasing(tl, "a", "opacity", 1, Easing.EASE_IN);
    expect(valueOf(clip(tl), property("opacity"), 0.5)).toBeCloseTo(0.25);
    const saved = toProto(tl).tracks[0].clips[0].transform!.opacity!;
    expect(saved.keyframes.map((k) => [k.timeSeconds, k.value, k.easing])).toEqual([[0, 0, Easing.LINEAR], [1, 1, Easing.EASE_IN]]);
  });

  it("keeps keyframes in order and inside the clip, and refuses a second one at the same time", () => {
    let tl = addKeyframe(addKeyframe(twoClips(), "a", "x", 1), "a", "x", 2);
    tl = moveKeyframe(tl, "a", "x", 0, 3); // past its neighbour: stops just before it
    expect(keyframesOf(clip(tl), property("x"))[0].timeSeconds).toBe(1.999);
    tl = moveKeyframe(tl, "a", "x", 1, 99);
    expect(keyframesOf(clip(tl), property("x"))[1].timeSeconds).toBe(4);
    expect(() => addKeyframe(tl, "a", "x", 4)).toThrow(TimelineError);
    expect(() => setKeyframeValue(tl, "a", "x", 5, 1)).toThrow(TimelineError);
  });

  it("deleting the last keyframe keeps its value as the constant", () => {
    let tl = setKeyframeValue(addKeyframe(twoClips(), "a", "scale", 1), "a", "scale", 0, 2);
    tl = deleteKeyframe(tl, "a", "scale", 0);
    expect(keyframesOf(clip(tl), property("scale"))).toEqual([]);
    expect(constantOf(clip(tl), property("scale"))).toBe(2);
  });

  it("animated looks replace their constant, which the contract wants at 0", () => {
    let tl = addKeyframe(twoClips(), "a", "temperature", 0);
    tl = setKeyframeValue(tl, "a", "temperature", 0, 3000);
    const f = toProto(tl).tracks[0].clips[0].filters!;
    expect(f.temperatureKelvin).toBe(0);
    expect(f.temperatureKeyframes.map((k) => k.value)).toEqual([3000]);
    tl = addKeyframe(tl, "a", "look", 1);
    expect(toProto(tl).tracks[0].clips[0].filters!.lookIntensity!.keyframes.length).toBe(1);
  });

  it("a speed ramp keeps the source range: the clip's length follows and later clips move", () => {
    let tl = addKeyframe(twoClips(), "a", "speed", 0);
    tl = addKeyframe(tl, "a", "speed", 2);
    tl = setKeyframeValue(tl, "a", "speed", 1, 2);
    // 0→2 s: rate 1→2 linear plays 3 s of source; the last 1 s of the 4 s range at 2x takes 0.5 s.
    expect(clip(tl).duration).toBeCloseTo(2.5, 9);
    expect(clip(tl, "b").start).toBe(3.5);
    const saved = toProto(tl).tracks[0].clips[0];
    expect(saved.sourceEndSeconds).toBe(4);
    expect(saved.speed).toBeUndefined();
    expect(propertiesFor(makeClip({ type: "text" })).some((p) => p.id === "speed")).toBe(false);
  });
});
