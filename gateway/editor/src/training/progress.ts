// A training job's live state built from its Watch events: the loss per step (from
// Progress.metrics), the sample clips (events with metrics.sample_step and the clip's asset id)
// and the checkpoints. Events arrive once each and in order (followJob), but a retried attempt
// trains its steps again from the last checkpoint: a step seen twice keeps its latest loss.
import { Stage, type JobEvent } from "../gen/viarte/type/v1/job_pb";

export interface LossPoint {
  step: number;
  loss: number;
}

export interface Sample {
  step: number;
  assetId: string;
}

export interface TrainingProgress {
  losses: LossPoint[];
  samples: Sample[];
  checkpoints: Sample[];
  learningRate: number | null;
  gradNorm: number | null;
}

export const EMPTY_PROGRESS: TrainingProgress = { losses: [], samples: [], checkpoints: [], learningRate: null, gradNorm: null };

function upsert(list: Sample[], item: Sample): Sample[] {
  return [...list.filter((s) => s.step !== item.step), item].sort((a, b) => a.step - b.step);
}

export function applyEvent(state: TrainingProgress, event: JobEvent): TrainingProgress {
  const p = event.progress;
  if (!p) return state;
  const m = p.metrics;
  let next = state;
  // A step's own event has grad_norm; sample and checkpoint announcements repeat their step's loss
  // but arrive later (after the asset is stored, steps further on): they are not points.
  const stepEvent = m.sample_step === undefined && m.checkpoint_step === undefined && m.grad_norm !== undefined;
  if (p.stage === Stage.TRAINING && stepEvent && m.loss !== undefined && p.step > 0) {
    const point = { step: p.step, loss: m.loss };
    // Keyed by step: a resumed attempt re-trains steps after its checkpoint.
    const losses = state.losses.at(-1)?.step === p.step - 1 || state.losses.length === 0
      ? [...state.losses, point]
      : [...state.losses.filter((l) => l.step < p.step), point];
    next = { ...next, losses, learningRate: m.learning_rate ?? next.learningRate, gradNorm: m.grad_norm ?? next.gradNorm };
  }
  if (p.assetId && m.sample_step !== undefined) next = { ...next, samples: upsert(next.samples, { step: m.sample_step, assetId: p.assetId }) };
  if (p.assetId && m.checkpoint_step !== undefined) {
    next = { ...next, checkpoints: upsert(next.checkpoints, { step: m.checkpoint_step, assetId: p.assetId }) };
  }
  return next;
}

// An SVG path of the losses scaled into a width × height box (y grows downwards; the smallest
// loss at the bottom), plus the axis range it used.
export function lossPath(points: readonly LossPoint[], width: number, height: number, totalSteps = 0): { d: string; min: number; max: number } {
  if (points.length === 0) return { d: "", min: 0, max: 0 };
  const losses = points.map((p) => p.loss);
  const min = Math.min(...losses);
  const max = Math.max(...losses);
  const span = max - min || 1;
  const lastStep = Math.max(totalSteps, points.at(-1)!.step, 2);
  const x = (step: number) => ((step - 1) / (lastStep - 1)) * width;
  const y = (loss: number) => height - ((loss - min) / span) * height;
  const d = points.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ");
  return { d, min, max };
}
