import { useRef, useState, type DragEvent, type PointerEvent as ReactPointerEvent } from "react";
import {
  clipEnd,
  findClip,
  moveClip,
  setTrackFlags,
  setTrackVolume,
  snap,
  snapClipStart,
  snapPoints,
  timelineDuration,
  TimelineError,
  trimEnd,
  trimStart,
  type Timeline,
} from "../timeline/model";
import { ClipStrip } from "./ClipStrip";

type DragMode = "move" | "trim-start" | "trim-end";

interface Drag {
  mode: DragMode;
  clipId: string;
  trackId: string;
  originX: number;
  originStart: number;
  originEnd: number;
  base: Timeline;
  moved: boolean;
}

interface Props {
  timeline: Timeline;
  playhead: number;
  pxPerSecond: number;
  snapping: boolean;
  selected: string | null;
  onSelect(id: string | null): void;
  onSeek(seconds: number): void;
  onCommit(next: Timeline): void;
  onApply(op: (tl: Timeline) => Timeline): void;
  onDropAsset(assetId: string, trackId: string, at: number): void;
}

const SNAP_PIXELS = 8;
const HEAD_WIDTH = 150;

export function TimelineView(props: Props) {
  const { timeline, playhead, pxPerSecond: px } = props;
  const [draft, setDraft] = useState<Timeline | null>(null);
  const drag = useRef<Drag | null>(null);
  const shown = draft ?? timeline;
  const length = Math.max(timelineDuration(shown) + 5, 20);
  const width = length * px;

  function snapTo(value: number, points: number[]): number {
    return props.snapping ? snap(value, points, SNAP_PIXELS / px) : value;
  }

  function beginDrag(event: ReactPointerEvent, mode: DragMode, clipId: string, trackId: string) {
    event.stopPropagation();
    event.preventDefault();
    const { clip } = findClip(timeline, clipId);
    drag.current = { mode, clipId, trackId, originX: event.clientX, originStart: clip.start, originEnd: clipEnd(clip), base: timeline, moved: false };
    (event.currentTarget as HTMLElement).setPointerCapture(event.pointerId);
    props.onSelect(clipId);
  }

  function onPointerMove(event: ReactPointerEvent) {
    const d = drag.current;
    if (!d) return;
    const dx = (event.clientX - d.originX) / px;
    if (!d.moved && Math.abs(event.clientX - d.originX) < 3) return;
    d.moved = true;
    const points = snapPoints(d.base, d.clipId, playhead);
    try {
      if (d.mode === "move") {
        const lane = document.elementFromPoint(event.clientX, event.clientY)?.closest<HTMLElement>("[data-track-id]");
        const trackId = lane?.dataset.trackId ?? d.trackId;
        const duration = d.originEnd - d.originStart;
        const start = props.snapping ? snapClipStart(d.originStart + dx, duration, points, SNAP_PIXELS / px) : d.originStart + dx;
        setDraft(moveClip(d.base, d.clipId, trackId, start));
      } else if (d.mode === "trim-start") {
        setDraft(trimStart(d.base, d.clipId, snapTo(d.originStart + dx, points)));
      } else {
        setDraft(trimEnd(d.base, d.clipId, snapTo(d.originEnd + dx, points)));
      }
    } catch (err) {
      // An invalid position (overlap, wrong track kind): keep the last valid draft.
      if (!(err instanceof TimelineError)) throw err;
    }
  }

  function onPointerUp() {
    const d = drag.current;
    drag.current = null;
    if (d?.moved && draft) props.onCommit(draft);
    setDraft(null);
  }

  // Scrub: click or drag on the ruler moves the playhead.
  function scrub(event: ReactPointerEvent<HTMLDivElement>) {
    const rect = event.currentTarget.getBoundingClientRect();
    const seconds = Math.max(0, (event.clientX - rect.left) / px);
    props.onSeek(Math.round(seconds * 100) / 100);
  }

  function onDrop(event: DragEvent<HTMLDivElement>, trackId: string) {
    const assetId = event.dataTransfer.getData("application/x-viarte-asset");
    if (!assetId) return;
    event.preventDefault();
    const rect = event.currentTarget.getBoundingClientRect();
    const at = snapTo(Math.max(0, (event.clientX - rect.left) / px), snapPoints(timeline, null, playhead));
    props.onDropAsset(assetId, trackId, at);
  }

  const ticks = [];
  const step = px >= 60 ? 1 : px >= 20 ? 5 : 10;
  for (let t = 0; t <= length; t += step) ticks.push(t);

  return (
    <div className="timeline" data-testid="timeline" onPointerMove={onPointerMove} onPointerUp={onPointerUp} onPointerCancel={onPointerUp}>
      <div className="timeline-scroll">
        <div className="timeline-inner" style={{ width: width + HEAD_WIDTH }}>
          <div className="ruler-row">
            <div className="track-head ruler-head">{px.toFixed(0)} px/s</div>
            <div
              className="ruler"
              data-testid="ruler"
              style={{ width }}
              onPointerDown={(e) => {
                (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
                scrub(e);
              }}
              onPointerMove={(e) => e.buttons === 1 && scrub(e)}
            >
              {ticks.map((t) => (
                <span key={t} className="tick" style={{ left: t * px }}>
                  {t}s
                </span>
              ))}
              <div className="playhead" data-testid="playhead" data-seconds={playhead} style={{ left: playhead * px }} />
            </div>
          </div>
          {shown.tracks.map((track) => (
            <div className="track-row" key={track.id}>
              <div className="track-head">
                <span className="track-name">{track.name}</span>
                {track.type === "audio" && (
                  <input
                    type="range"
                    min={0}
                    max={2}
                    step={0.05}
                    value={track.volume}
                    title={`Volume ${Math.round(track.volume * 100)}%`}
                    data-testid={`track-volume-${track.id}`}
                    onChange={(e) => props.onApply((tl) => setTrackVolume(tl, track.id, Number(e.target.value)))}
                  />
                )}
                {track.type !== "text" && (
                  <button className="link small" title="Mute" onClick={() => props.onApply((tl) => setTrackFlags(tl, track.id, { muted: !track.muted }))}>
                    {track.muted ? "Unmute" : "Mute"}
                  </button>
                )}
                {track.type !== "audio" && (
                  <button className="link small" title="Hide" onClick={() => props.onApply((tl) => setTrackFlags(tl, track.id, { hidden: !track.hidden }))}>
                    {track.hidden ? "Show" : "Hide"}
                  </button>
                )}
              </div>
              <div
                className={`lane ${track.type}`}
                data-track-id={track.id}
                data-testid={`lane-${track.id}`}
                style={{ width }}
                onDragOver={(e) => {
                  if (e.dataTransfer.types.includes("application/x-viarte-asset")) e.preventDefault();
                }}
                onDrop={(e) => onDrop(e, track.id)}
                onPointerDown={() => props.onSelect(null)}
              >
                {track.clips.map((clip) => (
                  <div
                    key={clip.id}
                    className={`clip ${clip.type}${clip.id === props.selected ? " selected" : ""}`}
                    style={{ left: clip.start * px, width: Math.max(4, clip.duration * px) }}
                    data-testid="clip"
                    data-clip-id={clip.id}
                    data-type={clip.type}
                    data-start={clip.start}
                    data-duration={clip.duration}
                    data-asset-id={clip.assetId}
                    onPointerDown={(e) => beginDrag(e, "move", clip.id, track.id)}
                  >
                    {(clip.type === "video" || clip.type === "audio") && clip.assetId && (
                      <ClipStrip assetId={clip.assetId} kind={clip.type} sourceStart={clip.sourceStart} duration={clip.duration} px={px} />
                    )}
                    {clip.transitionIn && <span className="transition-mark" style={{ width: clip.transitionIn.duration * px }} title="transition" />}
                    <div className="handle left" data-testid="trim-start" onPointerDown={(e) => beginDrag(e, "trim-start", clip.id, track.id)} />
                    <span className="clip-name">{clip.type === "text" ? `“${clip.text}”` : clip.name}</span>
                    <div className="handle right" data-testid="trim-end" onPointerDown={(e) => beginDrag(e, "trim-end", clip.id, track.id)} />
                  </div>
                ))}
              </div>
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

export { HEAD_WIDTH };
