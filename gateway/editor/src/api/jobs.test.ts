import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { JobEventSchema, JobState, JobStatusSchema, PlacementSchema, Stage, type JobStatus } from "../gen/viarte/type/v1/job_pb";
import { describePlacement, followJob, initialView, type WatchMessage } from "./jobs";

type Job = { id: string; status?: JobStatus };
type Where = { executor: string; node: string; device: string };
const RAY_NODE = "3f2a9c1be04d5c7e8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3";

function job(state: JobState, placement?: Where): Job {
  return { id: "j1", status: create(JobStatusSchema, { state, placement: placement && create(PlacementSchema, placement) }) };
}

function event(sequence: bigint, state: JobState, stage: Stage, placement?: Where, metrics?: Record<string, number>): WatchMessage<Job> {
  const value = create(JobEventSchema, { sequence, state, progress: { stage, metrics }, placement: placement && create(PlacementSchema, placement) });
  return { payload: { case: "event", value } };
}

function stream(messages: WatchMessage<Job>[]) {
  return async function* () {
    yield* messages;
  };
}

describe("placement in the job view", () => {
  it("comes from the RUNNING event's placement on Watch (no extra fetch), and is kept to the end", async () => {
    const views: (string | undefined)[] = [];
    const final = await followJob<Job>(
      stream([
        { payload: { case: "job", value: job(JobState.QUEUED) } },
        event(1n, JobState.QUEUED, Stage.QUEUED),
        event(2n, JobState.RUNNING, Stage.FETCHING_INPUTS, { executor: "ray", node: RAY_NODE, device: "gpu:0" }),
        event(3n, JobState.RUNNING, Stage.DENOISING),
        event(4n, JobState.SUCCEEDED, Stage.UPLOADING),
      ]),
      () => {},
      (v) => views.push(v.placement?.executor),
      new AbortController().signal,
    );
    expect(views).toEqual([undefined, undefined, "ray", "ray", "ray"]);
    expect(final.placement?.node).toBe(RAY_NODE);
    expect(describePlacement(final.placement)).toBe("ray · node 3f2a9c1be04d… · gpu:0");
  });

  it("follows a retry to its new placement", async () => {
    const final = await followJob<Job>(
      stream([
        event(1n, JobState.RUNNING, Stage.DENOISING, { executor: "ray", node: "node-a", device: "gpu:0" }),
        event(2n, JobState.QUEUED, Stage.QUEUED),
        event(3n, JobState.RUNNING, Stage.DENOISING, { executor: "ray", node: "node-b", device: "gpu:1" }),
        event(4n, JobState.SUCCEEDED, Stage.UPLOADING),
      ]),
      () => {},
      () => {},
      new AbortController().signal,
    );
    expect(describePlacement(final.placement)).toBe("ray · node node-b · gpu:1");
  });

  it("comes from the job itself when it is already placed", async () => {
    const placed = job(JobState.RUNNING, { executor: "local", node: "gpu-host-1", device: "cuda:0" });
    expect(describePlacement(initialView(placed.status).placement)).toBe("local · node gpu-host-1 · cuda:0");
    const final = await followJob<Job>(
      stream([{ payload: { case: "job", value: placed } }, event(5n, JobState.SUCCEEDED, Stage.ENCODING)]),
      () => {},
      () => {},
      new AbortController().signal,
    );
    expect(final.placement?.executor).toBe("local");
  });

  it("is empty for a job that never ran", () => {
    expect(initialView(job(JobState.QUEUED).status).placement).toBeUndefined();
    expect(describePlacement(undefined)).toBe("");
  });
});

describe("events and metrics", () => {
  it("hands every new event to onEvent once, in order, with the latest metrics in the view", async () => {
    const seen: bigint[] = [];
    const final = await followJob<Job>(
      stream([
        event(1n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.5 }),
        event(1n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.5 }),
        event(2n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.25 }),
        event(3n, JobState.SUCCEEDED, Stage.UPLOADING),
      ]),
      () => {},
      () => {},
      new AbortController().signal,
      (e) => seen.push(e.sequence),
    );
    expect(seen).toEqual([1n, 2n, 3n]);
    expect(final.metrics).toEqual({});
  });

  it("hands a job's stored events to onEvent when the Watch opens mid-run (the record is ahead of them)", async () => {
    const seen: bigint[] = [];
    const running = { id: "j1", status: create(JobStatusSchema, { state: JobState.RUNNING, lastSequence: 3n }) };
    const final = await followJob<Job>(
      stream([
        { payload: { case: "job", value: running } },
        event(1n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.5, grad_norm: 1 }),
        event(2n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.4, grad_norm: 1 }),
        event(3n, JobState.RUNNING, Stage.TRAINING, undefined, { loss: 0.3, grad_norm: 1 }),
        event(4n, JobState.SUCCEEDED, Stage.UPLOADING),
      ]),
      () => {},
      () => {},
      new AbortController().signal,
      (e) => seen.push(e.sequence),
    );
    expect(seen).toEqual([1n, 2n, 3n, 4n]);
    expect(final.state).toBe(JobState.SUCCEEDED);
    expect(final.events).toBe(1); // the view itself counts only what followed the record
  });
});
