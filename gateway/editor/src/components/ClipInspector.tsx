// The inspector's fields for the selected clip: timing, text, volume, the transition in (with its
// preview) and the effects. Every change is one undoable edit through `apply`.
import type { UiError } from "../api/errors";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";
import { moveClip, setClipText, setClipVolume, sourceUsed, trimEnd, type Clip, type Timeline, type Track } from "../timeline/model";
import { EffectsInspector } from "./EffectsInspector";
import { TransitionPicker } from "./TransitionPicker";

interface Props {
  timeline: Timeline;
  track: Track;
  clip: Clip;
  assets: Asset[];
  apply(op: (tl: Timeline) => Timeline): void;
  onDelete(): void;
  onUploaded(): void;
  onError(error: UiError): void;
}

export function ClipInspector({ timeline, track, clip, assets, apply, onDelete, onUploaded, onError }: Props) {
  return (
    <>
      <p>
        <strong>{clip.name}</strong> <span className="muted">({clip.type} on {track.name})</span>
      </p>
      <label className="field">
        <span className="label">Start (s)</span>
        <input type="number" step={0.1} min={0} value={clip.start} data-testid="clip-start" onChange={(e) => apply((tl) => moveClip(tl, clip.id, track.id, Number(e.target.value)))} />
      </label>
      <label className="field">
        <span className="label">Duration (s)</span>
        <input type="number" step={0.1} min={0.1} value={Math.round(clip.duration * 1000) / 1000} data-testid="clip-duration" onChange={(e) => apply((tl) => trimEnd(tl, clip.id, clip.start + Number(e.target.value)))} />
      </label>
      {clip.mediaDuration > 0 && (
        <p className="muted small">
          Source {clip.sourceStart.toFixed(2)}–{(clip.sourceStart + sourceUsed(clip)).toFixed(2)} s of {clip.mediaDuration.toFixed(2)} s
          {clip.speed !== undefined && clip.speed !== 1 ? ` at ${clip.speed}x` : ""}
        </p>
      )}
      {clip.type === "text" && (
        <label className="field">
          <span className="label">Text</span>
          <input value={clip.text} data-testid="clip-text" onChange={(e) => apply((tl) => setClipText(tl, clip.id, e.target.value))} />
        </label>
      )}
      {(clip.type === "video" || clip.type === "audio") && (
        <label className="field">
          <span className="label">Volume {Math.round(clip.volume * 100)}%</span>
          <input type="range" min={0} max={2} step={0.05} value={clip.volume} onChange={(e) => apply((tl) => setClipVolume(tl, clip.id, Number(e.target.value)))} />
        </label>
      )}
      <TransitionPicker timeline={timeline} clip={clip} apply={apply} />
      <EffectsInspector timeline={timeline} track={track} clip={clip} assets={assets} apply={apply} onUploaded={onUploaded} onError={onError} />
      <button className="danger" onClick={onDelete}>Delete clip</button>
    </>
  );
}
