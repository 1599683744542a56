// Shared helpers for engine tests: the seed fixture, float comparisons, the cpu backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

export interface FixtureTensor {
  shape: number[];
  data: number[];
}

export function loadSeedFixture(): Record<string, Record<string, unknown>> {
  const file = path.join(__dirname, '..', '..', 'fixtures', 'seed-reference', 'seed_modules.json');
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function f32(t: FixtureTensor): Float32Array {
  return Float32Array.from(t.data);
}

export async function useCpu(): Promise<void> {
  // Not setting IS_TEST (which would silence tfjs's banner): it is process-wide and turns on per-kernel
  // leak checks for every later test file too.
  assert.equal(await tf.setBackend('cpu'), true);
}

/** max |a−b| / max(|b|, floor): a relative error that does not blow up on near-zero entries. */
export function maxRelErr(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(actual.length, expected.length, 'length mismatch');
  let scale = floor;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]) / scale);
  return m;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const e = maxRelErr(actual, expected);
  assert.ok(e <= tol, `${what}: max relative error ${e.toExponential(2)} > ${tol}`);
}

export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}
