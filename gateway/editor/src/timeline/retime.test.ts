import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ClipFiltersSchema, Easing, KeyframeSchema } from "../gen/viarte/render/v1/timeline_pb";
import { addKeyframe, keyframesOf, property, setKeyframeValue, valueOf } from "./keyframes";
import { addClip, clipEnd, emptyTimeline, findClip, fromProto, makeClip, sourceUsed, splitClip, type Timeline, toProto, trimStart } from "./model";
import { cutKeyframes } from "./retime";

// A 4 s clip at 1 s on the timeline whose opacity rises 0 → 1 over clip-local 1..3 s, and whose
// exposure keyframes run -1 → 1 over 0..4 s.
function animated(): Timeline {
  const a = makeClip({ id: "a", type: "video", assetId: "v", start: 1, mediaDuration: 10, duration: 4 });
  let tl = addClip(emptyTimeline(), "v1", a);
  tl = addKeyframe(addKeyframe(tl, "a", "opacity", 1), "a", "opacity", 3);
  tl = setKeyframeValue(tl, "a", "opacity", 0, 0);
  tl = addKeyframe(addKeyframe(tl, "a", "exposure", 0), "a", "exposure", 4);
  tl = setKeyframeValue(setKeyframeValue(tl, "a", "exposure", 0, -1), "a", "exposure", 1, 1);
  return tl;
}
const clip = (tl: Timeline, id: string) => findClip(tl, id).clip;
const times = (tl: Timeline, id: string, p: string) => keyframesOf(clip(tl, id), property(p)).map((k) => [k.timeSeconds, k.value]);

// What a clip shows at timeline time t for property p.
function at(tl: Timeline, id: string, p: string, t: number): number {
  const c = clip(tl, id);
  return valueOf(c, property(p), t - c.start);
}

describe("keyframes follow the picture", () => {
  it("trimming the start keeps every remaining frame's values", () => {
    const before = animated();
    const after = trimStart(before, "a", 3); // 2 s off the front: the opacity ramp is half done there
    for (const t of [3, 3.5, 4, 4.5, 4.9]) {
      expect(at(after, "a", "opacity", t)).toBeCloseTo(at(before, "a", "opacity", t), 6);
      expect(at(after, "a", "exposure", t)).toBeCloseTo(at(before, "a", "exposure", t), 6);
    }
    expect(times(after, "a", "opacity")).toEqual([[0, 0.5], [1, 1]]);
  });

  it("extending the start back moves the keyframes later", () => {
    const trimmed = trimStart(animated(), "a", 2);
    expect(times(trimmed, "a", "opacity")).toEqual([[0, 0], [2, 1]]);
    const back = trimStart(trimmed, "a", 1);
    expect(times(back, "a", "opacity")).toEqual([[1, 0], [3, 1]]);
  });

  it("splitting gives each half the animation it showed", () => {
    const before = animated();
    const split = splitClip(before, "a", 3);
    const right = findClip(split, "a").track.clips.find((c) => c.id !== "a")!.id;
    for (const t of [1, 1.5, 2, 2.5, 2.95]) expect(at(split, "a", "opacity", t)).toBeCloseTo(at(before, "a", "opacity", t), 6);
    for (const t of [3, 3.5, 4, 4.9]) {
      expect(at(split, right, "opacity", t)).toBeCloseTo(at(before, "a", "opacity", t), 6);
      expect(at(split, right, "exposure", t)).toBeCloseTo(at(before, "a", "exposure", t), 6);
    }
    expect(times(split, "a", "opacity")).toEqual([[1, 0], [2, 0.5]]); // cut at its end
    expect(times(split, right, "opacity")).toEqual([[0, 0.5], [1, 1]]);
  });

  it("an edge already on a keyframe gets no second one; easing of a cut segment is kept", () => {
    const kfs = [
      create(KeyframeSchema, { timeSeconds: 0, value: 0, easing: Easing.LINEAR }),
      create(KeyframeSchema, { timeSeconds: 2, value: 1, easing: Easing.EASE_IN }),
    ];
    expect(cutKeyframes(kfs, 2).map((k) => [k.timeSeconds, k.value])).toEqual([[0, 1]]);
    const head = cutKeyframes(kfs, 0, 1);
    expect(head.map((k) => [k.timeSeconds, k.value, k.easing])).toEqual([[0, 0, Easing.LINEAR], [1, 0.25, Easing.EASE_IN]]);
  });
});

// A 6 s clip at 2 s on the timeline, from source 1 s, whose speed ramp rises 1 → 2 linearly over
// clip-local 0..2 s, holds 2 until 4 s, then eases in to 0.5 at 6 s.
function ramped(): Timeline {
  const kf = (timeSeconds: number, value: number, easing = Easing.LINEAR) => create(KeyframeSchema, { timeSeconds, value, easing });
  const filters = create(ClipFiltersSchema, { speedKeyframes: [kf(0, 1), kf(2, 2), kf(4, 2), kf(6, 0.5, Easing.EASE_IN)] });
  const a = makeClip({ id: "a", type: "video", assetId: "v", start: 2, sourceStart: 1, mediaDuration: 30, duration: 6, filters });
  return addClip(emptyTimeline(), "v1", a);
}

// The source second a clip plays at timeline time t.
const sourceAtTime = (tl: Timeline, id: string, t: number): number => {
  const c = clip(tl, id);
  return c.sourceStart + sourceUsed(c, t - c.start);
};

describe("speed ramps follow the picture", () => {
  it("trimming a ramped clip's start inside a linear segment keeps the source every kept frame plays", () => {
    const before = ramped();
    const after = trimStart(before, "a", 3); // 1 s in: half-way up the 1 → 2 segment
    expect(clipEnd(clip(after, "a"))).toBeCloseTo(8, 9);
    for (const t of [3, 3.5, 4, 5, 6, 7, 7.99]) expect(sourceAtTime(after, "a", t)).toBeCloseTo(sourceAtTime(before, "a", t), 3);
    expect(clip(after, "a").filters!.speedKeyframes.map((k) => [k.timeSeconds, k.value])).toEqual([[0, 1.5], [1, 2], [3, 2], [5, 0.5]]);
  });

  it("extending a ramped clip's start back plays the source at the ramp's first rate", () => {
    const after = trimStart(ramped(), "a", 1.5); // 0.5 s earlier at rate 1: source 0.5
    expect(clip(after, "a").sourceStart).toBeCloseTo(0.5, 6);
    expect(sourceAtTime(after, "a", 4)).toBeCloseTo(sourceAtTime(ramped(), "a", 4), 6);
  });

  it("splitting a ramped clip gives each half the source it played", () => {
    const before = ramped();
    const split = splitClip(before, "a", 5); // clip-local 3 s: the hold at rate 2
    const right = findClip(split, "a").track.clips.find((c) => c.id !== "a")!.id;
    expect(clipEnd(clip(split, "a"))).toBeCloseTo(5, 9);
    expect(clipEnd(clip(split, right))).toBeCloseTo(8, 9);
    for (const t of [2, 3, 4, 4.99]) expect(sourceAtTime(split, "a", t)).toBeCloseTo(sourceAtTime(before, "a", t), 3);
    for (const t of [5, 6, 6.5, 7.99]) expect(sourceAtTime(split, right, t)).toBeCloseTo(sourceAtTime(before, "a", t), 3);
  });

  it("saved and loaded, a split or trimmed ramped clip ends where it ended and meets its neighbour", () => {
    const assets = new Map([["v", { name: "v", type: "video" as const, duration: 30 }]]);
    const reload = (tl: Timeline) => fromProto(toProto(tl), assets);
    for (const at of [2.123, 2.5, 3.377, 5.001]) {
      const split = reload(splitClip(ramped(), "a", at));
      const [left, right] = [...split.tracks.find((t) => t.id === "v1")!.clips].sort((x, y) => x.start - y.start);
      expect(clipEnd(left)).toBeLessThanOrEqual(right.start + 1e-6);
      expect(clipEnd(left)).toBeCloseTo(at, 6);
      expect(clipEnd(right)).toBeCloseTo(8, 6);
    }
    const trimmed = reload(trimStart(ramped(), "a", 2.5));
    expect(clipEnd(clip(trimmed, "a"))).toBeCloseTo(8, 6);
  });

  it("a cut inside an eased segment of the ramp is refused; on its keyframe it is exact", () => {
    expect(() => splitClip(ramped(), "a", 7)).toThrow(/linear segment/);
    expect(() => trimStart(ramped(), "a", 7)).toThrow(/linear segment/);
    const before = ramped();
    const after = trimStart(before, "a", 6); // on the keyframe at clip-local 4 s
    for (const t of [6, 6.5, 7, 7.99]) expect(sourceAtTime(after, "a", t)).toBeCloseTo(sourceAtTime(before, "a", t), 3);
  });
});
