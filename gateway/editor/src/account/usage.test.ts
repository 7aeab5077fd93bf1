import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { JobKind, UsageRecordSchema } from "../gen/viarte/account/v1/account_pb";
import { LimitsSchema } from "../gen/viarte/type/v1/limits_pb";
import { creditBalance, dailyUsage, describeLimits, limitsFromForm } from "./usage";

function record(iso: string, kind: JobKind, credits: number) {
  const ms = Date.parse(iso);
  return create(UsageRecordSchema, { kind, credits: BigInt(credits), endTime: { seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 } });
}

describe("usage by day", () => {
  it("has one entry per UTC day of the range, empty days included, credits summed per kind", () => {
    const days = dailyUsage(
      [
        record("2026-12-01T23:59:00Z", JobKind.GENERATION, 5),
        record("2026-12-01T01:00:00Z", JobKind.RENDER, 2),
        record("2026-12-03T12:00:00Z", JobKind.GENERATION, 7),
        record("2026-11-30T12:00:00Z", JobKind.GENERATION, 100), // before the range
      ],
      new Date("2026-12-01T00:00:00Z"),
      new Date("2026-12-03T15:00:00Z"),
    );
    expect(days.map((d) => d.day)).toEqual(["2026-12-01", "2026-12-02", "2026-12-03"]);
    expect(days[0]).toEqual({ day: "2026-12-01", credits: 7, jobs: 2, byKind: { generation: 5, render: 2 } });
    expect(days[1].credits).toBe(0);
    expect(days[2].byKind).toEqual({ generation: 7 });
  });
});

describe("credit balance and limits", () => {
  it("is the budget minus what the month used, never negative; null without a budget", () => {
    expect(creditBalance(create(LimitsSchema, { monthlyCreditBudget: 100n }), 30n)).toBe(70);
    expect(creditBalance(create(LimitsSchema, { monthlyCreditBudget: 10n }), 30n)).toBe(0);
    expect(creditBalance(create(LimitsSchema, {}), 30n)).toBeNull();
    expect(creditBalance(undefined, 0)).toBeNull();
  });

  it("sends empty fields as no limit and numbers as typed", () => {
    expect(limitsFromForm({ monthlyCreditBudget: "500", createsPerMinute: "", readsPerMinute: " 2 ", maxConcurrentJobs: "-1" })).toEqual({
      monthlyCreditBudget: 500n, createsPerMinute: 0, readsPerMinute: 2, maxConcurrentJobs: -1,
    });
    expect(describeLimits(create(LimitsSchema, { createsPerMinute: 2, monthlyCreditBudget: 50n }))).toBe("50 credits/month · 2 creates/min");
    expect(describeLimits(undefined)).toBe("no limits");
  });
});
