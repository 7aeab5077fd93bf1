// W3C Trace Context from the editor: every call carries a `traceparent`, so one click's RPCs can be
// followed through Envoy (which keeps the header) into every service's spans and log lines
// (`trace_id`). The browser has no tracing SDK: each call starts its own trace, flagged sampled
// (01) so services with tracing on record it (their sampler follows the parent's flag).
import type { Interceptor } from "@connectrpc/connect";

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

function nonZeroHex(bytes: number): string {
  // All-zero ids are invalid in W3C Trace Context (a 1 in 2^64 draw, but never send one).
  for (;;) {
    const id = randomHex(bytes);
    if (/[^0]/.test(id)) return id;
  }
}

export function newTraceparent(): string {
  return `00-${nonZeroHex(16)}-${nonZeroHex(8)}-01`;
}

export const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

// Outermost interceptor: a retry inside (token refresh) stays in the same trace.
export const withTraceparent: Interceptor = (next) => (req) => {
  if (!req.header.has("traceparent")) req.header.set("traceparent", newTraceparent());
  return next(req);
};
