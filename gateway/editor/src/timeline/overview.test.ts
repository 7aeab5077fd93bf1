import { describe, expect, it } from "vitest";
import { filmstripTiles, waveformBars, type OverviewFacts } from "./overview";

const facts = (o: Partial<OverviewFacts>): OverviewFacts => ({
  tileSeconds: 0.5, tileCount: 8, tileWidth: 86, tileHeight: 48, peaks: new Uint8Array(), peaksPerSecond: 50, ...o,
});

describe("filmstripTiles", () => {
  it("shows the source frame under each tile's left edge, from the clip's in-point", () => {
    // 2 s of the source from 1 s, 100 px/s: tiles of 50 px at 0, 50, 100, 150 px = source 1, 1.5, 2, 2.5 s
    expect(filmstripTiles(facts({}), 1, 2, 100, 50)).toEqual([
      { x: 0, tile: 2 }, { x: 50, tile: 3 }, { x: 100, tile: 4 }, { x: 150, tile: 5 },
    ]);
  });
  it("stays inside the sprite and draws nothing without tiles", () => {
    expect(filmstripTiles(facts({}), 3.9, 1, 100, 60).map((t) => t.tile)).toEqual([7, 7]);
    expect(filmstripTiles(facts({ tileCount: 0 }), 0, 2, 100, 50)).toEqual([]);
  });
});

describe("waveformBars", () => {
  it("takes the loudest peak under each column", () => {
    const peaks = new Uint8Array(100); // 2 s at 50/s: silence, then full scale from 1 s
    peaks.fill(255, 50);
    peaks[5] = 51; // column 0 = peaks 0..9
    // 10 px/s, 2 px columns = 0.2 s = 10 peaks each, from source 0
    const bars = waveformBars(facts({ peaks }), 0, 2, 10, 2);
    expect(bars).toHaveLength(10);
    expect(bars[0]).toBe(0.2);
    expect(bars.slice(1, 5)).toEqual([0, 0, 0, 0]);
    expect(bars.slice(5)).toEqual([1, 1, 1, 1, 1]);
  });
  it("follows the in-point and stops at the end of the peaks", () => {
    const peaks = new Uint8Array([0, 0, 0, 0, 0, 255]);
    expect(waveformBars(facts({ peaks }), 0.1, 0.02, 100, 1)).toEqual([1, 1]);
    expect(waveformBars(facts({ peaks }), 1, 0.04, 100, 2)).toEqual([0, 0]);
    expect(waveformBars(facts({ peaks: new Uint8Array() }), 0, 1, 100)).toEqual([]);
  });
});
