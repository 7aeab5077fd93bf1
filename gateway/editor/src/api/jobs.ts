// Following a job's Watch stream (generation, render): the job first, then its events. A dropped
// stream is resumed with the last sequence seen, so no event is missed or repeated.
import { Code, ConnectError } from "@connectrpc/connect";
import { JobState, Stage, type JobError, type JobEvent, type JobStatus, type Placement, type Progress } from "../gen/viarte/type/v1/job_pb";

export interface JobView {
  state: JobState;
  progress: Progress | undefined;
  error: JobError | undefined;
  lastSequence: bigint;
  previewUrl: string | null;
  events: number;
  // Where the (last) attempt runs: executor, node, device; set once the job is on a device.
  placement: Placement | undefined;
  // Measurements of the latest event (training: loss, learning_rate, grad_norm, ...).
  metrics: Record<string, number>;
}

export type WatchMessage<J> = { payload: { case: "job"; value: J } | { case: "event"; value: JobEvent } | { case: undefined; value?: undefined } };

export const TERMINAL = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]);

export function initialView(status?: JobStatus): JobView {
  return {
    state: status?.state ?? JobState.QUEUED,
    progress: status?.progress,
    error: status?.error,
    lastSequence: status?.lastSequence ?? 0n,
    previewUrl: null,
    events: 0,
    placement: placed(status?.placement),
    metrics: {},
  };
}

function placed(placement: Placement | undefined): Placement | undefined {
  return placement?.executor ? placement : undefined;
}

function previewOf(progress: Progress | undefined, previous: string | null): string | null {
  if (!progress || progress.previewJpeg.length === 0) return previous;
  if (previous) URL.revokeObjectURL(previous);
  return URL.createObjectURL(new Blob([progress.previewJpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }));
}

export async function followJob<J extends { status?: JobStatus }>(
  watch: (afterSequence: bigint, signal: AbortSignal) => AsyncIterable<WatchMessage<J>>,
  onJob: (job: J) => void,
  onView: (view: JobView) => void,
  signal: AbortSignal,
  // Called with every new event (after the view was updated), e.g. to collect a training's losses.
  onEvent?: (event: JobEvent) => void,
): Promise<JobView> {
  let view = initialView();
  let attempts = 0;
  // The last event handed to onEvent. The job record that opens each Watch moves lastSequence up to
  // the job's newest event while the stored ones it has (from after_sequence on) still follow:
  // the view skips those, but onEvent gets each once (a training chart opened mid-run needs them).
  let delivered = 0n;
  while (!signal.aborted) {
    try {
      for await (const message of watch(view.lastSequence, signal)) {
        attempts = 0;
        if (message.payload.case === "job") {
          const job = message.payload.value;
          onJob(job);
          const status = job.status;
          view = {
            ...view,
            state: status?.state ?? view.state,
            progress: status?.progress ?? view.progress,
            error: status?.error ?? view.error,
            lastSequence: status && status.lastSequence > view.lastSequence ? status.lastSequence : view.lastSequence,
            placement: placed(status?.placement) ?? view.placement,
          };
        } else if (message.payload.case === "event") {
          const event = message.payload.value;
          if (event.sequence <= view.lastSequence) {
            if (event.sequence > delivered) {
              delivered = event.sequence;
              onEvent?.(event);
            }
            continue;
          }
          view = {
            ...view,
            state: event.state,
            progress: event.progress ?? view.progress,
            error: event.error ?? view.error,
            lastSequence: event.sequence,
            previewUrl: previewOf(event.progress, view.previewUrl),
            events: view.events + 1,
            // The RUNNING event of each attempt carries where it was placed (a retry may move it).
            placement: placed(event.placement) ?? view.placement,
            metrics: event.progress ? { ...event.progress.metrics } : view.metrics,
          };
          delivered = event.sequence;
          onEvent?.(event);
        }
        onView(view);
      }
      if (TERMINAL.has(view.state)) return view;
    } catch (error) {
      const err = ConnectError.from(error);
      if (signal.aborted || err.code === Code.Canceled) break;
      const transient = err.code === Code.Unavailable || err.code === Code.Unknown || err.code === Code.Internal;
      if (!transient || attempts >= 5) throw error;
    }
    attempts += 1;
    await new Promise((resolve) => setTimeout(resolve, 300 * attempts));
  }
  return view;
}

const STAGE_NAMES: Record<number, string> = {
  [Stage.QUEUED]: "Queued",
  [Stage.FETCHING_INPUTS]: "Fetching inputs",
  [Stage.MODEL_LOADING]: "Loading model",
  [Stage.DENOISING]: "Denoising",
  [Stage.DECODING]: "Decoding frames",
  [Stage.FACE_SWAP]: "Swapping faces",
  [Stage.UPSCALING]: "Upscaling",
  [Stage.RENDERING]: "Rendering",
  [Stage.ENCODING]: "Encoding",
  [Stage.UPLOADING]: "Saving",
  [Stage.GENERATING_TEXT]: "Writing",
  [Stage.TRAINING]: "Training",
};

export function describeProgress(view: JobView): string {
  if (view.state === JobState.SUCCEEDED) return "Done";
  if (view.state === JobState.FAILED) return `Failed: ${view.error?.message || view.error?.reason || "unknown error"}`;
  if (view.state === JobState.CANCELLED) return "Cancelled";
  const p = view.progress;
  if (!p) return "Queued";
  const parts = [STAGE_NAMES[p.stage] ?? "Working"];
  if (p.stage === Stage.QUEUED && p.queuePosition > 0) parts.push(`#${p.queuePosition} in queue`);
  if (p.totalSteps > 0) parts.push(`step ${p.step}/${p.totalSteps}`);
  if (p.totalFrames > 0) parts.push(`frame ${p.frame}/${p.totalFrames}`);
  if (p.fps > 0) parts.push(`${p.fps.toFixed(1)} fps`);
  if (p.eta) parts.push(`~${Number(p.eta.seconds)} s left`);
  return parts.join(" · ");
}

// "ray · node 3f2a9c1be04d… · gpu:0": the executor, the node (a Ray node id is shortened; a host
// name is kept) and the device.
export function describePlacement(placement: Placement | undefined): string {
  if (!placement?.executor) return "";
  const node = placement.node.length > 20 ? `${placement.node.slice(0, 12)}…` : placement.node;
  return [placement.executor, node && `node ${node}`, placement.device].filter(Boolean).join(" · ");
}

export function stateName(state: JobState): string {
  return JobState[state]?.toLowerCase() ?? "unknown";
}
