// Usage shown on the Account page: records grouped by day and job kind (for the chart), the
// credit balance left in the month, and the form values of a new API key's limits.
import { JobKind, type UsageRecord } from "../gen/viarte/account/v1/account_pb";
import type { Limits } from "../gen/viarte/type/v1/limits_pb";

export const KIND_NAMES: Record<number, string> = {
  [JobKind.GENERATION]: "generation",
  [JobKind.FACE_SWAP]: "face swap",
  [JobKind.UPSCALE]: "upscale",
  [JobKind.RENDER]: "render",
  [JobKind.TRAINING]: "training",
};

export function kindLabel(kind: JobKind): string {
  return KIND_NAMES[kind] ?? "other";
}

export interface DayUsage {
  // YYYY-MM-DD (UTC: the account service's months are UTC too).
  day: string;
  credits: number;
  jobs: number;
  // Credits per kind label, only kinds with jobs that day.
  byKind: Record<string, number>;
}

export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function recordTime(record: UsageRecord): Date | null {
  const t = record.endTime;
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : null;
}

// One entry per UTC day from `start` to `end` inclusive (days without jobs too, so the chart's
// time axis is even); records outside the range are left out.
export function dailyUsage(records: readonly UsageRecord[], start: Date, end: Date): DayUsage[] {
  const days = new Map<string, DayUsage>();
  const first = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  for (let t = first; t <= end.getTime(); t += 86_400_000) {
    const day = utcDay(new Date(t));
    days.set(day, { day, credits: 0, jobs: 0, byKind: {} });
  }
  for (const record of records) {
    const time = recordTime(record);
    const entry = time && days.get(utcDay(time));
    if (!entry) continue;
    const credits = Number(record.credits);
    const kind = kindLabel(record.kind);
    entry.credits += credits;
    entry.jobs += 1;
    entry.byKind[kind] = (entry.byKind[kind] ?? 0) + credits;
  }
  return [...days.values()];
}

// Credits left of a monthly budget (null = no budget). The tighter of the key-less user budget
// and what was used: never below zero.
export function creditBalance(limits: Limits | undefined, usedCredits: bigint | number): number | null {
  const budget = Number(limits?.monthlyCreditBudget ?? 0n);
  if (budget <= 0) return null;
  return Math.max(0, budget - Number(usedCredits));
}

export interface LimitsForm {
  monthlyCreditBudget: string;
  createsPerMinute: string;
  readsPerMinute: string;
  maxConcurrentJobs: string;
}

export const EMPTY_LIMITS: LimitsForm = { monthlyCreditBudget: "", createsPerMinute: "", readsPerMinute: "", maxConcurrentJobs: "" };

// Empty = no limit (0). Anything else is sent as typed: the server validates (negative numbers
// come back as INVALID_ARGUMENT on `limits.<field>`), so the form never hides what it sends.
export function limitsFromForm(form: LimitsForm): { monthlyCreditBudget: bigint; createsPerMinute: number; readsPerMinute: number; maxConcurrentJobs: number } {
  const int = (value: string) => (value.trim() === "" ? 0 : Math.trunc(Number(value)));
  return {
    monthlyCreditBudget: BigInt(int(form.monthlyCreditBudget) || 0),
    createsPerMinute: int(form.createsPerMinute) || 0,
    readsPerMinute: int(form.readsPerMinute) || 0,
    maxConcurrentJobs: int(form.maxConcurrentJobs) || 0,
  };
}

export function describeLimits(limits: Limits | undefined): string {
  if (!limits) return "no limits";
  const parts = [];
  if (limits.monthlyCreditBudget > 0n) parts.push(`${limits.monthlyCreditBudget} credits/month`);
  if (limits.createsPerMinute > 0) parts.push(`${limits.createsPerMinute} creates/min`);
  if (limits.readsPerMinute > 0) parts.push(`${limits.readsPerMinute} reads/min`);
  if (limits.maxConcurrentJobs > 0) parts.push(`${limits.maxConcurrentJobs} at once`);
  return parts.length ? parts.join(" · ") : "no limits";
}

// Every scope an API key can hold (auth.proto), in the order the form lists them.
export const SCOPES = [
  "assets:read", "assets:write", "jobs:read", "jobs:write", "projects:read", "projects:write", "assistant",
  "usage:read", "webhooks:read", "webhooks:write",
] as const;
