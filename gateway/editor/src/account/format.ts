import type { Timestamp } from "@bufbuild/protobuf/wkt";

export function toDate(t: Timestamp | undefined): Date | null {
  return t && (t.seconds > 0n || t.nanos > 0) ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : null;
}

// "2026-12-03 14:05:09" (UTC, as the account service counts months and days).
export function formatTime(t: Timestamp | undefined): string {
  const date = toDate(t);
  return date ? date.toISOString().slice(0, 19).replace("T", " ") : "";
}
