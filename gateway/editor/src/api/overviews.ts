// Filmstrips and waveforms of assets (RenderService.GetMediaOverview), fetched once per asset per
// page load: the render service computes each once per asset for everyone, this keeps the answer.
import { Code, ConnectError } from "@connectrpc/connect";
import { render } from "./client";
import type { OverviewFacts } from "../timeline/overview";

export interface LoadedOverview {
  facts: OverviewFacts;
  hasVideo: boolean;
  hasAudio: boolean;
  strip: HTMLImageElement | null;
}

const cache = new Map<string, Promise<LoadedOverview | null>>();

export function overviewOf(assetId: string): Promise<LoadedOverview | null> {
  let hit = cache.get(assetId);
  if (!hit) {
    hit = load(assetId).catch((err: unknown) => {
      // The service busy or slow: asked again on the next mount. A refusal (too long, not media,
      // gone) stands: the clip just shows no strip.
      const code = ConnectError.from(err).code;
      if (code === Code.Unavailable || code === Code.DeadlineExceeded || code === Code.ResourceExhausted) cache.delete(assetId);
      return null;
    });
    cache.set(assetId, hit);
  }
  return hit;
}

async function load(assetId: string): Promise<LoadedOverview> {
  const { overview: o } = await render.getMediaOverview({ assetId });
  if (!o) throw new Error("no overview");
  let strip: HTMLImageElement | null = null;
  if (o.filmstripJpeg.length > 0) {
    strip = new Image();
    strip.src = URL.createObjectURL(new Blob([o.filmstripJpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }));
    await strip.decode();
  }
  return {
    facts: { tileSeconds: o.tileSeconds, tileCount: o.tileCount, tileWidth: o.tileWidth, tileHeight: o.tileHeight, peaks: o.peaks, peaksPerSecond: o.peaksPerSecond },
    hasVideo: o.hasVideo,
    hasAudio: o.hasAudio,
    strip,
  };
}
