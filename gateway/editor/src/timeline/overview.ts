// Where a clip's filmstrip tiles and waveform bars go (pure: no DOM, no I/O). The overview is the
// render service's GetMediaOverview of the clip's asset: a sprite of `tileCount` tiles, tile i
// showing the source at i * tileSeconds, and one peak byte per 1/peaksPerSecond s of the source.

export interface OverviewFacts {
  tileSeconds: number;
  tileCount: number;
  tileWidth: number;
  tileHeight: number;
  peaks: Uint8Array;
  peaksPerSecond: number;
}

export interface TilePlacement {
  x: number; // left edge on the clip, px
  tile: number; // index into the sprite
}

// Tiles of `shownWidth` px side by side from the clip's left edge; each shows the source frame at
// the time under its left edge (the clip plays its source from `sourceStart`, speed 1).
export function filmstripTiles(o: OverviewFacts, sourceStart: number, duration: number, px: number, shownWidth: number): TilePlacement[] {
  if (o.tileCount <= 0 || o.tileSeconds <= 0 || shownWidth <= 0 || px <= 0) return [];
  const width = duration * px;
  const out: TilePlacement[] = [];
  for (let x = 0; x < width; x += shownWidth) {
    const t = sourceStart + x / px;
    out.push({ x, tile: Math.min(o.tileCount - 1, Math.max(0, Math.floor(t / o.tileSeconds + 1e-6))) });
  }
  return out;
}

// One bar per column of `columnPx` px: the loudest peak of the source span under it, 0..1.
export function waveformBars(o: OverviewFacts, sourceStart: number, duration: number, px: number, columnPx = 2): number[] {
  if (o.peaks.length === 0 || o.peaksPerSecond <= 0 || px <= 0) return [];
  const columns = Math.max(0, Math.ceil((duration * px) / columnPx));
  const out: number[] = [];
  for (let c = 0; c < columns; c++) {
    const from = sourceStart + (c * columnPx) / px;
    const to = sourceStart + ((c + 1) * columnPx) / px;
    const first = Math.max(0, Math.floor(from * o.peaksPerSecond));
    const last = Math.min(o.peaks.length, Math.max(first + 1, Math.ceil(to * o.peaksPerSecond)));
    let peak = 0;
    for (let i = first; i < last; i++) peak = Math.max(peak, o.peaks[i]);
    out.push(peak / 255);
  }
  return out;
}
