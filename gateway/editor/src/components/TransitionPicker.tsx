// The selected clip's transition in: any transition RenderService.ListCapabilities lists, its
// length and easing, and a preview beside the picker — RenderFrame of the frame in the middle of
// the transition, so the choice is seen before playing.
import { useEffect, useState } from "react";
import { render } from "../api/client";
import { toUiError } from "../api/errors";
import { Easing } from "../gen/viarte/render/v1/timeline_pb";
import { EASINGS } from "../timeline/keyframes";
import { type Clip, type Timeline, toProto } from "../timeline/model";
import { FALLBACK_NAMES, pickTransition, transitionMiddle, transitionName } from "../timeline/transitions";

// One ListCapabilities call per page load: the list only changes with the service's ffmpeg.
let capabilities: Promise<string[]> | null = null;
function transitionNames(): Promise<string[]> {
  capabilities ??= render.listCapabilities({}).then(
    (reply) => (reply.transitions.length ? reply.transitions : FALLBACK_NAMES),
    () => {
      capabilities = null; // try again next time
      return FALLBACK_NAMES;
    },
  );
  return capabilities;
}

interface Props {
  timeline: Timeline;
  clip: Clip;
  apply(op: (tl: Timeline) => Timeline): void;
}

export function TransitionPicker({ timeline, clip, apply }: Props) {
  const [names, setNames] = useState<string[]>(FALLBACK_NAMES);
  const [preview, setPreview] = useState<{ url: string | null; message: string }>({ url: null, message: "" });
  const current = transitionName(clip.transitionIn);
  const middle = transitionMiddle(timeline, clip.id);

  useEffect(() => {
    let live = true;
    void transitionNames().then((n) => live && setNames(n));
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    if (middle === null) return;
    const controller = new AbortController();
    const timer = window.setTimeout(async () => {
      try {
        const reply = await render.renderFrame({ timeline: toProto(timeline), timeSeconds: middle, maxWidth: 240 }, { signal: controller.signal });
        const url = URL.createObjectURL(new Blob([reply.jpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }));
        setPreview((p) => {
          if (p.url) URL.revokeObjectURL(p.url);
          return { url, message: "" };
        });
      } catch (err) {
        if (!controller.signal.aborted) setPreview((p) => ({ ...p, message: toUiError(err).message }));
      }
    }, 250);
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
  }, [timeline, middle]);

  const options = current && !names.includes(current) ? [current, ...names] : names;
  return (
    <div className="transition-picker">
      <label className="field">
        <span className="label">Transition in</span>
        <select value={current} data-testid="clip-transition" onChange={(e) => apply((tl) => pickTransition(tl, clip.id, e.target.value))}>
          <option value="">None</option>
          {options.map((name) => (
            <option key={name} value={name}>{name}</option>
          ))}
        </select>
      </label>
      {clip.transitionIn && (
        <>
          <label className="field">
            <span className="label">Transition length (s)</span>
            <input type="number" step={0.1} min={0.1} value={clip.transitionIn.duration} data-testid="transition-length"
              onChange={(e) => apply((tl) => pickTransition(tl, clip.id, current, { duration: Number(e.target.value) }))} />
          </label>
          <label className="field">
            <span className="label">Transition easing</span>
            <select value={clip.transitionIn.easing ?? Easing.UNSPECIFIED} data-testid="transition-easing"
              onChange={(e) => apply((tl) => pickTransition(tl, clip.id, current, { easing: Number(e.target.value) as Easing }))}>
              <option value={Easing.UNSPECIFIED}>Linear (default)</option>
              {EASINGS.map(([easing, label]) => (
                <option key={easing} value={easing}>{label}</option>
              ))}
            </select>
          </label>
          <figure className="transition-preview">
            {preview.url && <img src={preview.url} alt={`${current} halfway`} data-testid="transition-preview" data-time={middle ?? undefined} />}
            <figcaption className="muted small">{preview.message || `Halfway, at ${(middle ?? 0).toFixed(2)} s`}</figcaption>
          </figure>
        </>
      )}
    </div>
  );
}
