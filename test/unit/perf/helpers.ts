// Shared by the fast-path tests: deterministic inputs without any backend, and a session's losses.
import { buildBuiltinSession } from '../../../src/engine/session';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

/** Deterministic values in [-1, 1) without any backend (a linear congruential generator). */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The train loss of every step of a whole session of `cfg` on the current backend. */
export async function sessionLosses(cfg: ExperimentConfig): Promise<number[]> {
  const s = await buildBuiltinSession(cfg);
  const out: number[] = [];
  try {
    for await (const p of s.run()) out.push(p.loss);
  } finally {
    s.dispose();
  }
  return out;
}
