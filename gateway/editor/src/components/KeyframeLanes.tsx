// Keyframe lanes under the selected clip (issue 19): one lane per property the contract animates,
// its curve as the render evaluates it, and its keyframes as points to drag — sideways in time,
// up and down in value (the speed lane is the speed ramp's curve editor: the clip's length follows
// the ramp). Add at the playhead, pick a point to edit its value, the easing of the segment that
// ends at it, or delete it. A drag is one undoable edit, committed on release.
import { useState, type PointerEvent as ReactPointerEvent } from "react";
import { Easing } from "../gen/viarte/render/v1/timeline_pb";
import {
  addKeyframe,
  deleteKeyframe,
  EASINGS,
  keyframesOf,
  moveKeyframe,
  propertiesFor,
  type Property,
  setKeyframeEasing,
  setKeyframeValue,
  valueOf,
} from "../timeline/keyframes";
import { type Clip, findClip, type Timeline, TimelineError } from "../timeline/model";

const LANE_HEIGHT = 30;
const MIN_WIDTH = 320;
const CLICK_PIXELS = 3; // less movement than this is a click (select), not a drag

interface Props {
  timeline: Timeline;
  clip: Clip;
  playhead: number;
  pxPerSecond: number;
  apply(op: (tl: Timeline) => Timeline): void;
}

interface Picked {
  property: string;
  index: number;
}

interface Drag extends Picked {
  x0: number;
  y0: number;
  moved: boolean;
  rect: DOMRect;
  time: number;
  value: number;
}

// The edit a drag makes: the time, then the value.
function dragged(tl: Timeline, clipId: string, d: Drag): Timeline {
  return setKeyframeValue(moveKeyframe(tl, clipId, d.property, d.index, d.time), clipId, d.property, d.index, d.value);
}

export function KeyframeLanes({ timeline, clip, playhead, pxPerSecond, apply }: Props) {
  const [picked, setPicked] = useState<Picked | null>(null);
  const [drag, setDrag] = useState<Drag | null>(null);
  // While dragging, the lanes draw the edit they would commit.
  let shownClip = clip;
  if (drag?.moved) {
    try {
      shownClip = findClip(dragged(timeline, clip.id, drag), clip.id).clip;
    } catch (err) {
      if (!(err instanceof TimelineError)) throw err;
    }
  }
  const width = Math.max(MIN_WIDTH, clip.duration * pxPerSecond);
  const scale = width / clip.duration; // px per second of the clip
  const local = playhead - clip.start;
  const inside = local >= 0 && local <= clip.duration;
  const y = (p: Property, v: number) => (1 - (v - p.min) / (p.max - p.min)) * (LANE_HEIGHT - 8) + 4;

  function begin(event: ReactPointerEvent<HTMLButtonElement>, p: Property, index: number) {
    const lane = event.currentTarget.parentElement!;
    event.currentTarget.setPointerCapture(event.pointerId);
    const k = keyframesOf(clip, p)[index];
    setPicked({ property: p.id, index });
    setDrag({ property: p.id, index, x0: event.clientX, y0: event.clientY, moved: false, rect: lane.getBoundingClientRect(), time: k.timeSeconds, value: k.value });
  }

  function move(event: ReactPointerEvent, p: Property) {
    if (!drag) return;
    const moved = drag.moved || Math.hypot(event.clientX - drag.x0, event.clientY - drag.y0) >= CLICK_PIXELS;
    if (!moved) return;
    // Keyframes land on the canvas's frames: the render samples the curve once per frame.
    const fps = timeline.canvas.fps || 24;
    const time = Math.max(0, Math.round(((event.clientX - drag.rect.left) / scale) * fps) / fps);
    const fraction = 1 - (event.clientY - drag.rect.top - 4) / (LANE_HEIGHT - 8);
    const value = Math.round((p.min + Math.min(1, Math.max(0, fraction)) * (p.max - p.min)) / p.step) * p.step;
    setDrag({ ...drag, moved, time, value: Number(value.toFixed(6)) });
  }

  function end() {
    if (drag?.moved) {
      const d = drag;
      apply((tl) => dragged(tl, clip.id, d));
    }
    setDrag(null);
  }

  const lanes = propertiesFor(clip);
  const current = picked ? lanes.find((p) => p.id === picked.property) : undefined;
  const currentKf = current && picked ? keyframesOf(clip, current)[picked.index] : undefined;
  return (
    <section className="keyframe-lanes" aria-label={`Keyframes of ${clip.name}`} data-testid="keyframe-lanes">
      <h2>Keyframes · {clip.name}</h2>
      <div className="kf-scroll">
        {lanes.map((p) => {
          const kfs = keyframesOf(shownClip, p);
          const samples = Array.from({ length: 61 }, (_, i) => (i / 60) * Math.min(shownClip.duration, width / scale));
          const points = samples.map((t) => `${(t * scale).toFixed(1)},${y(p, valueOf(shownClip, p, t)).toFixed(1)}`).join(" ");
          return (
            <div className="kf-lane" key={p.id} data-testid={`kf-lane-${p.id}`}>
              <div className="kf-head">
                <span>{p.label}</span>
                <button className="link small" disabled={!inside} data-testid={`add-kf-${p.id}`} aria-label={`Add a ${p.label} keyframe at the playhead`}
                  onClick={() => apply((tl) => addKeyframe(tl, clip.id, p.id, local))}>
                  ◆+
                </button>
              </div>
              <div className="kf-track" style={{ width, height: LANE_HEIGHT }} onPointerMove={(e) => move(e, p)} onPointerUp={end} onPointerCancel={() => setDrag(null)}>
                <svg width={width} height={LANE_HEIGHT} aria-hidden="true">
                  <polyline points={points} fill="none" stroke={kfs.length ? "#8fb3ff" : "#555b66"} strokeWidth={1.5} />
                </svg>
                {inside && <span className="kf-playhead" style={{ left: local * scale }} />}
                {kfs.map((k, i) => (
                  <button
                    key={i}
                    className={`kf ${picked?.property === p.id && picked.index === i ? "picked" : ""}`}
                    style={{ left: k.timeSeconds * scale, top: y(p, k.value) }}
                    data-testid={`kf-${p.id}-${i}`}
                    data-time={k.timeSeconds}
                    data-value={k.value}
                    aria-label={`${p.label} keyframe at ${k.timeSeconds.toFixed(2)} s: ${k.value}`}
                    onPointerDown={(e) => begin(e, p, i)}
                    onClick={() => setPicked({ property: p.id, index: i })}
                  />
                ))}
              </div>
            </div>
          );
        })}
      </div>
      {current && currentKf && picked && (
        <div className="kf-editor" data-testid="kf-editor">
          <span>{current.label} at {currentKf.timeSeconds.toFixed(3)} s</span>
          <label className="checkbox small">
            Value
            <input type="number" step={current.step} min={current.min} max={current.max} value={currentKf.value} data-testid="kf-value"
              onChange={(e) => apply((tl) => setKeyframeValue(tl, clip.id, current.id, picked.index, Number(e.target.value)))} />
          </label>
          <label className="checkbox small">
            Easing into it
            <select value={currentKf.easing === Easing.UNSPECIFIED ? Easing.LINEAR : currentKf.easing} data-testid="kf-easing"
              onChange={(e) => apply((tl) => setKeyframeEasing(tl, clip.id, current.id, picked.index, Number(e.target.value) as Easing))}>
              {EASINGS.map(([easing, label]) => (
                <option key={easing} value={easing}>{label}</option>
              ))}
            </select>
          </label>
          <button className="link small" data-testid="kf-delete" onClick={() => { apply((tl) => deleteKeyframe(tl, clip.id, current.id, picked.index)); setPicked(null); }}>
            Delete keyframe
          </button>
        </div>
      )}
    </section>
  );
}
