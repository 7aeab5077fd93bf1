import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { JobEventSchema, JobState, Stage } from "../gen/viarte/type/v1/job_pb";
import { applyEvent, EMPTY_PROGRESS, lossPath, type TrainingProgress } from "./progress";

function ev(step: number, metrics: Record<string, number>, assetId = "") {
  return create(JobEventSchema, { state: JobState.RUNNING, progress: { stage: Stage.TRAINING, step, totalSteps: 20, metrics, assetId } });
}

function run(events: ReturnType<typeof ev>[]): TrainingProgress {
  return events.reduce(applyEvent, EMPTY_PROGRESS);
}

describe("training progress from Watch events", () => {
  it("collects the loss of each step in order, and the latest learning rate and grad norm", () => {
    const p = run([1, 2, 3].map((s) => ev(s, { loss: 1 / s, learning_rate: 1e-4, grad_norm: s })));
    expect(p.losses).toEqual([{ step: 1, loss: 1 }, { step: 2, loss: 0.5 }, { step: 3, loss: 1 / 3 }]);
    expect(p.learningRate).toBe(1e-4);
    expect(p.gradNorm).toBe(3);
  });

  it("keys samples and checkpoints by their step with the announced asset id", () => {
    const p = run([
      ev(5, { loss: 0.4, learning_rate: 1, grad_norm: 1 }),
      ev(5, { sample_step: 5 }, "asset-sample-5"),
      ev(5, { checkpoint_step: 5 }, "asset-ckpt-5"),
      ev(10, { sample_step: 10 }, "asset-sample-10"),
    ]);
    expect(p.samples).toEqual([{ step: 5, assetId: "asset-sample-5" }, { step: 10, assetId: "asset-sample-10" }]);
    expect(p.checkpoints).toEqual([{ step: 5, assetId: "asset-ckpt-5" }]);
    // A sample announcement carries no loss: the curve has the one training step.
    expect(p.losses).toEqual([{ step: 5, loss: 0.4 }]);
  });

  it("a sample or checkpoint announced after later steps (with its step's loss) adds no point", () => {
    const steps = [1, 2, 3, 4, 5, 6].map((s) => ev(s, { loss: 1 / s, learning_rate: 1, grad_norm: 1 }));
    const p = run([...steps, ev(3, { sample_step: 3, loss: 1 / 3 }, "s3"), ev(3, { checkpoint_step: 3, loss: 1 / 3 }, "c3"), ev(6, { sample_step: 6, loss: 1 / 6 }, "s6")]);
    expect(p.losses.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(p.samples.map((s) => s.step)).toEqual([3, 6]);
    expect(p.checkpoints).toEqual([{ step: 3, assetId: "c3" }]);
  });

  it("a resumed attempt replaces the steps it trains again (no duplicate points)", () => {
    const p = run([1, 2, 3, 4, 5, 6, 7].map((s) => ev(s, { loss: s, grad_norm: 1 })).concat([6, 7, 8].map((s) => ev(s, { loss: 10 * s, grad_norm: 1 }))));
    expect(p.losses.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(p.losses.at(-1)).toEqual({ step: 8, loss: 80 });
    expect(p.losses[5]).toEqual({ step: 6, loss: 60 });
  });

  it("ignores events without training metrics (queued, model loading)", () => {
    const queued = create(JobEventSchema, { state: JobState.QUEUED, progress: { stage: Stage.QUEUED } });
    expect(applyEvent(EMPTY_PROGRESS, queued)).toBe(EMPTY_PROGRESS);
  });
});

describe("loss chart path", () => {
  it("spans the box: first step at x=0, the highest loss at the top, the lowest at the bottom", () => {
    const { d, min, max } = lossPath([{ step: 1, loss: 2 }, { step: 2, loss: 1 }, { step: 3, loss: 0 }], 100, 50, 3);
    expect(d).toBe("M0.0,0.0 L50.0,25.0 L100.0,50.0");
    expect([min, max]).toEqual([0, 2]);
  });

  it("leaves room for the steps still to come", () => {
    expect(lossPath([{ step: 1, loss: 1 }, { step: 2, loss: 1 }], 100, 50, 5).d).toBe("M0.0,50.0 L25.0,50.0");
    expect(lossPath([], 100, 50).d).toBe("");
  });
});
