import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TimelineSchema, TrackKind } from "../gen/viarte/render/v1/timeline_pb";
import { applyProposal, autoEditRequest, beatsOnTimeline, musicClip, setAudioEq, setDucking, setLut, snapToBeats } from "./effects";
import { addClip, commit, emptyTimeline, fromProto, history, makeClip, TimelineError, toProto, undo, type Timeline } from "./model";

function project(): { tl: Timeline; video: string; music: string } {
  let tl = emptyTimeline({ width: 320, height: 180, fps: 30 });
  const a = makeClip({ type: "video", assetId: "clip-b", start: 3, mediaDuration: 3, duration: 3 });
  const b = makeClip({ type: "video", assetId: "clip-a", start: 0, mediaDuration: 3, duration: 3 });
  const again = makeClip({ type: "video", assetId: "clip-a", start: 6, mediaDuration: 3, duration: 2 });
  const music = makeClip({ type: "audio", assetId: "song", start: 0, mediaDuration: 12, duration: 12 });
  tl = addClip(addClip(addClip(addClip(tl, "v1", a), "v1", b), "v1", again), "a1", music);
  return { tl, video: b.id, music: music.id };
}

const roundTrip = (tl: Timeline): Timeline =>
  fromProto(fromBinary(TimelineSchema, toBinary(TimelineSchema, toProto(tl))), new Map());

describe("effects", () => {
  it("sets EQ and LUT on the clip's filters and they survive a save", () => {
    const { tl, video, music } = project();
    const next = setLut(setAudioEq(tl, music, "voice"), video, "lut-1");
    const saved = toProto(roundTrip(next));
    const clips = saved.tracks.flatMap((t) => t.clips);
    expect(clips.find((c) => c.assetId === "song")?.filters?.audioEq).toBe("voice");
    expect(clips.find((c) => c.startSeconds === 0 && c.assetId === "clip-a")?.filters?.lutAssetId).toBe("lut-1");
    expect(() => setAudioEq(tl, music, "loud")).toThrow(TimelineError);
    expect(() => setLut(tl, music, "lut-1")).toThrow(/video and image/);
    // The original document is untouched (operations are pure).
    expect(tl.tracks.flatMap((t) => t.clips).every((c) => c.filters === undefined)).toBe(true);
  });

  it("ducks a track under another and refuses chains and itself", () => {
    let { tl } = project();
    tl = { ...tl, tracks: [...tl.tracks, { ...tl.tracks[3], id: "voice", name: "Voice", clips: [] }] };
    const ducked = setDucking(tl, "a1", "voice");
    const saved = toProto(roundTrip(ducked));
    expect(saved.tracks.find((t) => t.id === "a1")?.ducking?.voiceTrackId).toBe("voice");
    expect(saved.tracks.find((t) => t.kind === TrackKind.AUDIO && t.id === "voice")?.ducking).toBeUndefined();
    expect(() => setDucking(tl, "a1", "a1")).toThrow(TimelineError);
    expect(() => setDucking(ducked, "voice", "a1")).toThrow(/ducked track/);
    expect(() => setDucking(tl, "a1", "t1")).toThrow(/sound/);
    expect(setDucking(ducked, "a1", null).tracks.find((t) => t.id === "a1")?.ducking).toBeUndefined();
  });

  it("asks ProposeEdit for the video assets in order, each once, cut to the first audio clip", () => {
    const { tl } = project();
    const req = autoEditRequest(tl, { matchColors: true });
    expect(req.clipAssetIds).toEqual(["clip-a", "clip-b"]);
    expect(req.musicAssetId).toBe("song");
    expect(req.transitions).toBe(true);
    expect(req.matchColors).toBe(true);
    expect(req.canvas?.width).toBe(320);
    expect(() => autoEditRequest(emptyTimeline())).toThrow(/video clips/);
  });

  it("applies a proposal as one undoable change, keeping named transitions and LUTs", () => {
    const { tl } = project();
    const proposal = create(TimelineSchema, {
      canvas: { width: 640, height: 360, fps: 25 },
      tracks: [
        {
          id: "video", kind: TrackKind.VIDEO, name: "Edit",
          clips: [
            { assetId: "clip-a", startSeconds: 0, sourceEndSeconds: 1.47, volume: 0 },
            { assetId: "clip-b", startSeconds: 1.03, sourceEndSeconds: 1.22, volume: 0,
              transitionIn: { name: "slideleft", durationSeconds: 0.43 }, filters: { lutAssetId: "match-1" } },
          ],
        },
        { id: "music", kind: TrackKind.AUDIO, name: "Music", clips: [{ assetId: "song", sourceEndSeconds: 2.25 }] },
      ],
    });
    let h = history(tl);
    h = commit(h, applyProposal(h.present, proposal, new Map()));
    expect(h.present.canvas.width).toBe(320); // the project's canvas stays
    const saved = toProto(h.present);
    const second = saved.tracks[0].clips[1];
    expect(second.transitionIn?.name).toBe("slideleft");
    expect(second.filters?.lutAssetId).toBe("match-1");
    expect(undo(h).present).toBe(tl);
    // Cuts on beats land on the document's millisecond grid without overlapping: the first clip
    // ends exactly where the next starts (1.47 s, from 1.4705 s), the transition keeps its overlap.
    const beat = create(TimelineSchema, {
      tracks: [{
        id: "video", kind: TrackKind.VIDEO,
        clips: [
          { assetId: "clip-a", startSeconds: 0, sourceEndSeconds: 1.4705442 },
          { assetId: "clip-b", startSeconds: 1.4705442, sourceStartSeconds: 0.2, sourceEndSeconds: 1.1934013 },
          { assetId: "clip-a", startSeconds: 2.2639455 - 0.2, sourceStartSeconds: 1, sourceEndSeconds: 2,
            transitionIn: { name: "fade", durationSeconds: 0.4 } },
        ],
      }],
    });
    const clips = toProto(applyProposal(tl, beat, new Map())).tracks[0].clips;
    const end = (c: (typeof clips)[number]) => c.startSeconds + (c.sourceEndSeconds - c.sourceStartSeconds);
    expect(end(clips[0])).toBe(clips[1].startSeconds);
    expect(clips[1].startSeconds).toBe(1.471);
    expect(Math.abs(end(clips[1]) - clips[2].startSeconds - 0.4)).toBeLessThan(1e-9);
    expect(() => applyProposal(tl, create(TimelineSchema, {}), new Map())).toThrow(/empty/);
  });

  it("snaps the cuts between video clips to the music's beats, rippling what follows", () => {
    let tl = emptyTimeline({ width: 320, height: 180, fps: 30 });
    const a = makeClip({ type: "video", assetId: "a", start: 0, mediaDuration: 3, duration: 2.8 });
    const b = makeClip({ type: "video", assetId: "b", start: 2.8, mediaDuration: 3, duration: 1.1 });
    const c = makeClip({ type: "video", assetId: "c", start: 4.4, mediaDuration: 10, duration: 2 }); // after a 0.5 s gap
    const music = makeClip({ type: "audio", assetId: "song", start: 0.25, sourceStart: 0.25, mediaDuration: 12, duration: 8 });
    tl = addClip(addClip(addClip(addClip(tl, "v1", a), "v1", b), "v1", c), "a1", music);
    // 120 BPM from the song's 0 s; the clip plays it from 0.25 s at 0.25 s, so beats sit on whole half-seconds.
    const beats = beatsOnTimeline(musicClip(tl), Array.from({ length: 24 }, (_, i) => i * 0.5));
    expect(beats[0]).toBe(0.5); // the song's 0 s beat is before the clip's in-point
    const { timeline: snapped, moved } = snapToBeats(tl, beats);
    const [sa, sb, sc] = snapped.tracks[0].clips;
    // a's end 2.8 → 3.0 (its source ends at 3 s: reachable); b, rippled to 3.0–4.1, ends on 4.0;
    // c is last (only cuts between clips move), rippled by both moves with its gap kept.
    expect([sa.start, sa.duration]).toEqual([0, 3]);
    expect([sb.start, sb.duration]).toEqual([3, 1]);
    expect(sc.start).toBe(4.5); // 4.4 + 0.2 - 0.1
    expect(moved).toBe(2);
    // A clip is never extended past its source: with a beat only at 3.5, a (3 s of source) trims to 2.5.
    const far = snapToBeats(tl, [2.5, 3.5]).timeline.tracks[0].clips[0];
    expect(far.duration).toBe(2.5);
    // Pure, one undo step, and nothing to do is no change.
    expect(tl.tracks[0].clips[0].duration).toBe(2.8);
    const h = commit(history(tl), snapped);
    expect(undo(h).present).toBe(tl);
    expect(snapToBeats(snapped, beats).moved).toBe(0);
    expect(() => snapToBeats(tl, [])).toThrow(TimelineError);
  });
});
