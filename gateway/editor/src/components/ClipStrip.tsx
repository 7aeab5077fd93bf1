import { useEffect, useRef, useState } from "react";
import { overviewOf, type LoadedOverview } from "../api/overviews";
import { filmstripTiles, waveformBars } from "../timeline/overview";

// Canvases wider than this are drawn at a lower resolution and stretched (browsers cap their size).
const MAX_CANVAS = 4096;
const HEIGHT = 34;

interface Props {
  assetId: string;
  kind: "video" | "audio";
  sourceStart: number;
  duration: number;
  px: number;
}

// A clip's pictures along its length (video) and its sound's peaks (audio; a band along the bottom
// of a video with sound), drawn under the clip's name and handles.
export function ClipStrip({ assetId, kind, sourceStart, duration, px }: Props) {
  const [overview, setOverview] = useState<LoadedOverview | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const width = Math.max(1, Math.round(duration * px));
  const scale = Math.min(1, MAX_CANVAS / width);

  useEffect(() => {
    let live = true;
    void overviewOf(assetId).then((o) => live && setOverview(o));
    return () => {
      live = false;
    };
  }, [assetId]);

  useEffect(() => {
    const c = canvas.current;
    if (!c || !overview) return;
    const g = c.getContext("2d");
    if (!g) return;
    g.setTransform(scale, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, width, HEIGHT);
    const f = overview.facts;
    let band = HEIGHT;
    if (kind === "video" && overview.strip) {
      const shown = Math.max(8, Math.round((f.tileWidth * HEIGHT) / Math.max(1, f.tileHeight)));
      for (const t of filmstripTiles(f, sourceStart, duration, px, shown)) {
        g.drawImage(overview.strip, t.tile * f.tileWidth, 0, f.tileWidth, f.tileHeight, t.x, 0, shown, HEIGHT);
      }
      band = 12;
    }
    if (overview.hasAudio) {
      const column = 2;
      g.fillStyle = kind === "video" ? "rgba(0, 0, 0, 0.45)" : "rgba(0, 0, 0, 0)";
      g.fillRect(0, HEIGHT - band, width, band);
      g.fillStyle = kind === "video" ? "rgba(160, 255, 200, 0.9)" : "rgba(190, 255, 220, 0.75)";
      const mid = HEIGHT - band / 2;
      waveformBars(f, sourceStart, duration, px, column).forEach((v, i) => {
        const h = Math.max(1, v * band);
        g.fillRect(i * column, mid - h / 2, column - 0.5, h);
      });
    }
    c.dataset.drawn = "true";
  }, [overview, kind, sourceStart, duration, px, width, scale]);

  if (!overview) return null;
  return (
    <canvas
      ref={canvas}
      className="clip-strip"
      data-testid={kind === "video" ? "filmstrip" : "waveform"}
      data-has-audio={overview.hasAudio}
      width={Math.round(width * scale)}
      height={HEIGHT}
      style={{ width }}
      aria-hidden="true"
    />
  );
}
