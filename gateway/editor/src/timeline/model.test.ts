import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TimelineSchema, TrackKind, TransitionKind } from "../gen/viarte/render/v1/timeline_pb";
import {
  addClip,
  commit,
  emptyTimeline,
  firstFreeStart,
  fromProto,
  history,
  makeClip,
  moveClip,
  redo,
  setClipText,
  setTrackVolume,
  setTransition,
  snap,
  snapClipStart,
  snapPoints,
  splitClip,
  TimelineError,
  toProto,
  trimEnd,
  trimStart,
  undo,
  type Timeline,
} from "./model";

function withVideo(start = 0, mediaDuration = 4): { tl: Timeline; id: string } {
  const clip = makeClip({ type: "video", assetId: "vid-1", name: "gen.mp4", start, mediaDuration, duration: mediaDuration });
  return { tl: addClip(emptyTimeline(), "v1", clip), id: clip.id };
}

describe("add and move", () => {
  it("adds a clip sorted by start and refuses overlaps", () => {
    const { tl } = withVideo(2);
    const before = makeClip({ type: "image", assetId: "img-1", start: 0, duration: 1.5 });
    const both = addClip(tl, "v1", before);
    expect(both.tracks[0].clips.map((c) => c.start)).toEqual([0, 2]);
    const clash = makeClip({ type: "image", assetId: "img-2", start: 3, duration: 1 });
    expect(() => addClip(both, "v1", clash)).toThrow(TimelineError);
  });

  it("refuses clips on tracks of the wrong kind", () => {
    const text = makeClip({ type: "text", text: "hi" });
    expect(() => addClip(emptyTimeline(), "v1", text)).toThrow(/cannot go on/);
    expect(addClip(emptyTimeline(), "t1", text).tracks[2].clips).toHaveLength(1);
  });

  it("finds the first free start after existing clips", () => {
    const { tl } = withVideo(1, 2);
    expect(firstFreeStart(tl.tracks[0], 0, 1)).toBe(0);
    expect(firstFreeStart(tl.tracks[0], 0, 1.5)).toBe(3);
    expect(firstFreeStart(tl.tracks[0], 2, 1)).toBe(3);
  });

  it("moves a clip between tracks and in time", () => {
    const { tl, id } = withVideo();
    const moved = moveClip(tl, id, "v2", 1.25);
    expect(moved.tracks[0].clips).toHaveLength(0);
    expect(moved.tracks[1].clips[0]).toMatchObject({ id, start: 1.25 });
    expect(() => moveClip(tl, id, "t1", 0)).toThrow(TimelineError);
    expect(moveClip(tl, id, "v1", -3).tracks[0].clips[0].start).toBe(0);
  });
});

describe("trim and split", () => {
  it("trims the end within the source media", () => {
    const { tl, id } = withVideo(0, 4);
    expect(trimEnd(tl, id, 2.5).tracks[0].clips[0].duration).toBe(2.5);
    expect(trimEnd(tl, id, 10).tracks[0].clips[0].duration).toBe(4);
    expect(trimEnd(tl, id, -1).tracks[0].clips[0].duration).toBe(0.1);
  });

  it("trims the start, moving the source in-point and keeping the end", () => {
    const { tl, id } = withVideo(1, 4);
    const clip = trimStart(tl, id, 2).tracks[0].clips[0];
    expect(clip).toMatchObject({ start: 2, duration: 3, sourceStart: 1 });
    // Extending left past the beginning of the source stops at source 0.
    const back = trimStart(trimStart(tl, id, 2), id, 0).tracks[0].clips[0];
    expect(back).toMatchObject({ start: 1, duration: 4, sourceStart: 0 });
  });

  it("extends an image freely", () => {
    const image = makeClip({ type: "image", assetId: "img", duration: 3 });
    const tl = addClip(emptyTimeline(), "v1", image);
    expect(trimEnd(tl, image.id, 9).tracks[0].clips[0].duration).toBe(9);
  });

  it("splits at the playhead into two contiguous clips", () => {
    const { tl, id } = withVideo(1, 4);
    const split = splitClip(trimStart(tl, id, 1.5), id, 3);
    const [left, right] = split.tracks[0].clips;
    expect(left).toMatchObject({ id, start: 1.5, duration: 1.5, sourceStart: 0.5 });
    expect(right).toMatchObject({ start: 3, duration: 2, sourceStart: 2 });
    expect(right.id).not.toBe(id);
    expect(() => splitClip(tl, id, 0.5)).toThrow(/inside/);
  });
});

describe("snapping", () => {
  it("snaps to the nearest point within the threshold only", () => {
    expect(snap(2.04, [0, 2, 5], 0.1)).toBe(2);
    expect(snap(2.3, [0, 2, 5], 0.1)).toBe(2.3);
  });

  it("collects clip edges and the playhead, and snaps a clip by either edge", () => {
    const { tl, id } = withVideo(1, 2);
    const points = snapPoints(tl, null, 7);
    expect(points).toEqual(expect.arrayContaining([0, 7, 1, 3]));
    expect(snapPoints(tl, id, 7)).not.toContain(3);
    expect(snapClipStart(3.05, 1, points, 0.1)).toBe(3); // start snaps to an end
    expect(snapClipStart(5.93, 1, points, 0.1)).toBe(6); // end snaps to the playhead
  });
});

describe("transitions", () => {
  it("overlaps the clip with its predecessor and shifts later clips", () => {
    let tl = withVideo(0, 4).tl;
    const b = makeClip({ type: "image", assetId: "b", start: 4, duration: 2 });
    const c = makeClip({ type: "image", assetId: "c", start: 6, duration: 2 });
    tl = addClip(addClip(tl, "v1", b), "v1", c);
    const faded = setTransition(tl, b.id, { kind: TransitionKind.CROSSFADE, duration: 1 });
    expect(faded.tracks[0].clips.map((x) => x.start)).toEqual([0, 3, 5]);
    const removed = setTransition(faded, b.id, null);
    expect(removed.tracks[0].clips.map((x) => x.start)).toEqual([0, 4, 6]);
    expect(() => setTransition(tl, tl.tracks[0].clips[0].id, { kind: TransitionKind.CROSSFADE, duration: 1 })).toThrow(
      /previous clip/,
    );
  });
});

describe("undo and redo", () => {
  it("walks back and forth through committed states", () => {
    const { tl, id } = withVideo();
    let h = history(tl);
    h = commit(h, trimEnd(h.present, id, 2));
    h = commit(h, setTrackVolume(h.present, "a1", 0.5));
    expect(h.present.tracks[3].volume).toBe(0.5);
    h = undo(h);
    expect(h.present.tracks[3].volume).toBe(1);
    expect(h.present.tracks[0].clips[0].duration).toBe(2);
    h = undo(h);
    expect(h.present).toBe(tl);
    expect(undo(h)).toBe(h);
    h = redo(redo(h));
    expect(h.present.tracks[3].volume).toBe(0.5);
    // A new edit after undo drops the redo branch.
    h = commit(undo(h), setTrackVolume(h.present, "a1", 0.2));
    expect(h.future).toHaveLength(0);
  });
});

describe("proto conversion", () => {
  it("writes the render service's Timeline and reads it back", () => {
    let { tl, id } = withVideo(0, 4);
    tl = trimStart(tl, id, 1);
    const still = makeClip({ type: "image", assetId: "img-1", name: "photo.png", start: 0, duration: 2.5 });
    const text = makeClip({ type: "text", start: 0.5, duration: 2 });
    tl = addClip(tl, "v2", still);
    tl = setClipText(addClip(tl, "t1", text), text.id, "Hello");
    tl = setTrackVolume(tl, "a1", 0.8);

    const proto = toProto(tl);
    const bytes = toBinary(TimelineSchema, proto);
    const back = fromBinary(TimelineSchema, bytes);
    expect(back.canvas).toMatchObject({ width: 640, height: 360, fps: 24 });
    expect(back.tracks.map((t) => t.kind)).toEqual([TrackKind.VIDEO, TrackKind.VIDEO, TrackKind.TEXT, TrackKind.AUDIO]);
    expect(back.tracks[0].clips[0]).toMatchObject({ assetId: "vid-1", startSeconds: 1, sourceStartSeconds: 1, sourceEndSeconds: 4, durationSeconds: 0 });
    expect(back.tracks[1].clips[0]).toMatchObject({ assetId: "img-1", durationSeconds: 2.5, sourceEndSeconds: 0 });
    expect(back.tracks[2].clips[0].text?.text).toBe("Hello");
    expect(back.tracks[3].volume).toBe(0.8);
    expect(back.tracks[0].volume).toBeUndefined();

    const assets = new Map([
      ["vid-1", { name: "gen.mp4", type: "video" as const, duration: 4 }],
      ["img-1", { name: "photo.png", type: "image" as const, duration: 0 }],
    ]);
    const again = fromProto(back, assets);
    expect(again.tracks[0].clips[0]).toMatchObject({ type: "video", start: 1, duration: 3, sourceStart: 1, mediaDuration: 4 });
    expect(again.tracks[1].clips[0]).toMatchObject({ type: "image", duration: 2.5 });
    expect(again.tracks[2].clips[0]).toMatchObject({ type: "text", text: "Hello" });
    expect(toBinary(TimelineSchema, toProto(again))).toEqual(bytes);
  });

  it("keeps transitions", () => {
    const empty = create(TimelineSchema, {});
    expect(fromProto(empty, new Map()).tracks).toEqual([]);
    let tl = withVideo(0, 4).tl;
    const b = makeClip({ type: "image", assetId: "b", start: 4, duration: 2 });
    tl = setTransition(addClip(tl, "v1", b), b.id, { kind: TransitionKind.WIPE_LEFT, duration: 0.5 });
    const clip = toProto(tl).tracks[0].clips[1];
    expect(clip.transitionIn).toMatchObject({ kind: TransitionKind.WIPE_LEFT, durationSeconds: 0.5 });
    expect(clip.startSeconds).toBe(3.5);
  });
});
