import { create, equals } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BlendMode,
  CurvesPreset,
  Easing,
  Fit,
  TextAlign,
  TimelineSchema,
  TrackKind,
  TransitionKind,
} from "../gen/viarte/render/v1/timeline_pb";
import { type AssetFacts, fromProto, setClipText, toProto, trimEnd } from "./model";

const kf = (timeSeconds: number, value: number, easing = Easing.UNSPECIFIED) => ({ timeSeconds, value, easing });

// Every field of the contract set to something other than its default, as the SDK or the assistant
// may save it: the editor must hand back exactly this after reading it.
function fullTimeline() {
  return create(TimelineSchema, {
    canvas: { width: 1280, height: 720, fps: 30, backgroundColor: "#102030", durationSeconds: 12 },
    mix: { loudnessTargetLufs: -16, disableLoudnessNormalization: false },
    tracks: [
      {
        id: "v1",
        kind: TrackKind.VIDEO,
        name: "Main",
        muted: true,
        hidden: false,
        volume: 0.8,
        clips: [
          {
            id: "c1",
            assetId: "vid-1",
            startSeconds: 0,
            sourceStartSeconds: 1,
            sourceEndSeconds: 5,
            speed: 2,
            volume: 0.5,
            fit: Fit.COVER,
            fadeInSeconds: 0.25,
            fadeOutSeconds: 0.5,
            transform: {
              x: { value: 0.4, keyframes: [kf(0, 0.2), kf(1.5, 0.8, Easing.EASE_IN_OUT)] },
              y: { value: 0.6 },
              scale: { value: 1.2, keyframes: [kf(0.5, 1), kf(1, 2, Easing.EASE_OUT)] },
              rotationDegrees: { value: 15 },
              opacity: { value: 0.9, keyframes: [kf(0, 0), kf(1, 1, Easing.LINEAR)] },
            },
            filters: {
              brightness: 0.1,
              contrast: 1.2,
              saturation: 0.8,
              blurSigma: 2,
              grayscale: true,
              lutAssetId: "lut-1",
              curves: CurvesPreset.VINTAGE,
              sharpen: 1,
              grain: 10,
              chromaKey: { color: "#00ff00", similarity: 0.2, blend: 0.1, spill: 0.3 },
              blendMode: BlendMode.SCREEN,
              stabilize: true,
              audioEq: "voice",
              lookIntensity: { value: 1, keyframes: [kf(0, 0), kf(1, 1, Easing.EASE_IN)] },
              exposureKeyframes: [kf(0, -1), kf(1, 1)],
              temperatureKeyframes: [kf(0, 3000), kf(1, 9000)],
              vignetteKeyframes: [kf(0, 0), kf(1, 0.8)],
            },
          },
          {
            id: "c2",
            assetId: "vid-2",
            startSeconds: 1.5,
            sourceStartSeconds: 0,
            sourceEndSeconds: 3.1,
            filters: { speedKeyframes: [kf(0, 1), kf(1, 2, Easing.EASE_IN), kf(2, 0.5)] },
            transitionIn: { kind: TransitionKind.WIPE_LEFT, durationSeconds: 0.5, easing: Easing.EASE_OUT },
          },
          {
            id: "c3",
            assetId: "vid-2",
            startSeconds: 6,
            sourceStartSeconds: 0.5,
            durationSeconds: 2,
            filters: { speedKeyframes: [kf(0, 0.5), kf(2, 1.5)] },
          },
          {
            id: "c4",
            assetId: "img-1",
            startSeconds: 8,
            durationSeconds: 2,
            transitionIn: { name: "circleopen", durationSeconds: 0 },
          },
        ],
      },
      {
        id: "t1",
        kind: TrackKind.TEXT,
        name: "Titles",
        clips: [
          {
            id: "t-1",
            startSeconds: 1,
            durationSeconds: 2.5,
            text: {
              text: "Hello",
              fontFamily: "DejaVu Serif",
              fontSize: 64,
              color: "#ffcc00",
              bold: true,
              italic: true,
              outlineWidth: 2,
              outlineColor: "#000000",
              shadowX: 3,
              shadowY: 4,
              shadowColor: "#00000080",
              align: TextAlign.CENTER,
              lineSpacing: 5,
              boxWidth: 400,
            },
          },
        ],
      },
      {
        id: "a1",
        kind: TrackKind.AUDIO,
        name: "Music",
        ducking: { voiceTrackId: "v1", thresholdDb: -25, ratio: 6, attackMs: 30, releaseMs: 300 },
        clips: [{ id: "m1", assetId: "aud-1", startSeconds: 0, sourceStartSeconds: 2, sourceEndSeconds: 0 }],
      },
    ],
  });
}

const facts = new Map<string, AssetFacts>([
  ["vid-1", { name: "a.mp4", type: "video", duration: 10 }],
  ["vid-2", { name: "b.mp4", type: "video", duration: 8 }],
  ["img-1", { name: "c.png", type: "image", duration: 0 }],
  ["aud-1", { name: "m.wav", type: "audio", duration: 30 }],
]);

describe("proto round trip", () => {
  it("hands back a full Timeline exactly as it was read", () => {
    const proto = fullTimeline();
    const back = toProto(fromProto(proto, facts));
    expect(back).toEqual(proto); // shows the difference when it fails
    expect(equals(TimelineSchema, back, proto)).toBe(true);
  });

  it("keeps what it does not edit through an edit", () => {
    const proto = fullTimeline();
    const edited = setClipText(fromProto(proto, facts), "t-1", "Bye");
    const back = toProto(edited);
    const text = back.tracks[1].clips[0].text!;
    expect(text.text).toBe("Bye");
    expect(text.fontFamily).toBe("DejaVu Serif");
    expect(text.align).toBe(TextAlign.CENTER);
    expect(back.tracks[0].clips[0].transform).toEqual(proto.tracks[0].clips[0].transform);
  });

  it("derives a clip's length from its speed, and writes the trim at that speed", () => {
    const tl = fromProto(fullTimeline(), facts);
    const fast = tl.tracks[0].clips[0];
    expect(fast.duration).toBe(2); // 4 s of source at 2x
    const trimmed = toProto(trimEnd(tl, "c1", 1));
    const clip = trimmed.tracks[0].clips[0];
    expect(clip.sourceStartSeconds).toBe(1);
    expect(clip.sourceEndSeconds).toBe(3); // 1 s of timeline plays 2 s of source
    expect(clip.speed).toBe(2);
    // trimEnd stops at the end of the source, at the clip's speed: (10 - 1) / 2
    const alone = { ...tl, tracks: [{ ...tl.tracks[0], clips: [fast] }] };
    expect(trimEnd(alone, "c1", 100).tracks[0].clips[0].duration).toBe(4.5);
  });

  it("derives a ramped clip's length as the render service does", () => {
    const tl = fromProto(fullTimeline(), facts);
    const ramped = tl.tracks[0].clips[1];
    // 1→2 eased in over the first second plays 1 + 1/3 s of source, 2→0.5 linear over the next
    // 2 - 0.75 = 1.25 s; the remaining 3.1 - 2.5833 s at 0.5x take 1.0333 s more.
    expect(ramped.duration).toBeCloseTo(2 + (3.1 - 1 - 1 / 3 - 1.25) / 0.5, 6);
  });
});
