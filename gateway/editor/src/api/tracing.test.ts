import { describe, expect, it } from "vitest";
import { TRACEPARENT, newTraceparent, withTraceparent } from "./tracing";

describe("traceparent", () => {
  it("is a sampled W3C version-00 header with fresh ids per call", () => {
    const a = newTraceparent();
    const b = newTraceparent();
    expect(a).toMatch(TRACEPARENT);
    expect(a.endsWith("-01")).toBe(true);
    expect(a.slice(3, 35)).not.toBe(b.slice(3, 35));
  });

  it("is added to a request without one and kept on one that has it", async () => {
    const seen: string[] = [];
    const next = async (req: { header: Headers }) => {
      seen.push(req.header.get("traceparent") ?? "");
      return {} as never;
    };
    const call = withTraceparent(next as never);
    await call({ header: new Headers() } as never);
    const given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await call({ header: new Headers({ traceparent: given }) } as never);
    expect(seen[0]).toMatch(TRACEPARENT);
    expect(seen[1]).toBe(given);
  });
});
