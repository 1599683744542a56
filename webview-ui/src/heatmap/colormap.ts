// Diverging colour map centred on zero (ColorBrewer RdBu, 5 stops): blue for negative, near-white
// for 0, red for positive. Pure, so tests can check pixel colours against it.

export type Rgb = [number, number, number];

const STOPS: { t: number; c: Rgb }[] = [
  { t: -1, c: [33, 102, 172] },
  { t: -0.5, c: [103, 169, 207] },
  { t: 0, c: [247, 247, 247] },
  { t: 0.5, c: [239, 138, 98] },
  { t: 1, c: [178, 24, 43] },
];

/** Colour for v on a symmetric scale [-maxAbs, +maxAbs]; NaN → grey. */
export function divergingRgb(v: number, maxAbs: number): Rgb {
  if (!Number.isFinite(v)) return [128, 128, 128];
  const t = maxAbs > 0 ? Math.max(-1, Math.min(1, v / maxAbs)) : 0;
  for (let s = 1; s < STOPS.length; s++) {
    const lo = STOPS[s - 1];
    const hi = STOPS[s];
    if (t <= hi.t) {
      const f = (t - lo.t) / (hi.t - lo.t);
      return [
        Math.round(lo.c[0] + f * (hi.c[0] - lo.c[0])),
        Math.round(lo.c[1] + f * (hi.c[1] - lo.c[1])),
        Math.round(lo.c[2] + f * (hi.c[2] - lo.c[2])),
      ];
    }
  }
  return STOPS[STOPS.length - 1].c;
}

/** Fills RGBA pixels (one per grid cell) for a canvas ImageData. */
export function paintGrid(grid: Float32Array, maxAbs: number, out: Uint8ClampedArray): void {
  for (let i = 0; i < grid.length; i++) {
    const [r, g, b] = divergingRgb(grid[i], maxAbs);
    out[i * 4] = r;
    out[i * 4 + 1] = g;
    out[i * 4 + 2] = b;
    out[i * 4 + 3] = 255;
  }
}
