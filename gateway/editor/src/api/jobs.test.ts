import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { JobEventSchema, JobState, JobStatusSchema, PlacementSchema, Stage, type JobStatus } from "../gen/viarte/type/v1/job_pb";
import { describePlacement, followJob, initialView, type WatchMessage } from "./jobs";

type Job = { id: string; status?: JobStatus };
const RAY_NODE = "3f2a9c1be04d5c7e8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3";

function job(state: JobState, placement?: { executor: string; node: string; device: string }): Job {
  return { id: "j1", status: create(JobStatusSchema, { state, placement: placement && create(PlacementSchema, placement) }) };
}

function event(sequence: bigint, state: JobState, stage: Stage): WatchMessage<Job> {
  return { payload: { case: "event", value: create(JobEventSchema, { sequence, state, progress: { stage } }) } };
}

function stream(messages: WatchMessage<Job>[]) {
  return async function* () {
    yield* messages;
  };
}

describe("placement in the job view", () => {
  it("is fetched once when the work reaches a device, and kept to the end", async () => {
    let fetched = 0;
    const views: (string | undefined)[] = [];
    const final = await followJob<Job>(
      stream([
        { payload: { case: "job", value: job(JobState.QUEUED) } },
        event(1n, JobState.RUNNING, Stage.FETCHING_INPUTS),
        event(2n, JobState.RUNNING, Stage.DENOISING),
        event(3n, JobState.RUNNING, Stage.DENOISING),
        event(4n, JobState.SUCCEEDED, Stage.UPLOADING),
      ]),
      () => {},
      (v) => views.push(v.placement?.executor),
      new AbortController().signal,
      async () => {
        fetched += 1;
        return job(JobState.RUNNING, { executor: "ray", node: RAY_NODE, device: "gpu:0" });
      },
    );
    expect(fetched).toBe(1);
    expect(views).toEqual([undefined, undefined, "ray", "ray", "ray"]);
    expect(final.placement?.node).toBe(RAY_NODE);
    expect(describePlacement(final.placement)).toBe("ray · node 3f2a9c1be04d… · gpu:0");
  });

  it("comes from the job itself when it is already placed (no extra fetch)", async () => {
    const placed = job(JobState.RUNNING, { executor: "local", node: "gpu-host-1", device: "cuda:0" });
    expect(describePlacement(initialView(placed.status).placement)).toBe("local · node gpu-host-1 · cuda:0");
    const final = await followJob<Job>(
      stream([{ payload: { case: "job", value: placed } }, event(5n, JobState.SUCCEEDED, Stage.ENCODING)]),
      () => {},
      () => {},
      new AbortController().signal,
      async () => {
        throw new Error("not needed");
      },
    );
    expect(final.placement?.executor).toBe("local");
  });

  it("is empty for a job that never ran", () => {
    expect(initialView(job(JobState.QUEUED).status).placement).toBeUndefined();
    expect(describePlacement(undefined)).toBe("");
  });
});
