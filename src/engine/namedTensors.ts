// Plain-data tensors (no tfjs objects): what crosses the engine boundary for checkpoints, adapter export
// and reference data. Row-major float32.
import * as tf from '@tensorflow/tfjs-core';
import { invalidArgument, shapeError } from './errors';

export interface NamedTensors {
  [name: string]: { shape: number[]; data: Float32Array };
}

/** Copies a tensor's values out (synchronously; call between steps, not inside a step). */
export function toPlain(t: tf.Tensor): { shape: number[]; data: Float32Array } {
  const data = t.dataSync();
  return { shape: [...t.shape], data: data instanceof Float32Array ? new Float32Array(data) : Float32Array.from(data) };
}

/** Checks that `tensors[name]` exists and has `shape` (and as many values), without touching anything. */
export function checkPlain(shape: readonly number[], tensors: NamedTensors, name: string): void {
  const t = tensors[name];
  if (!t) throw invalidArgument(`checkpoint has no tensor "${name}"`);
  if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) throw shapeError(`tensor "${name}"`, shape, t.shape);
  const n = shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw invalidArgument(`tensor "${name}": expected ${n} values, got ${t.data.length}`);
}

/** Assigns a plain tensor to a variable, checking the name and shape. */
export function assignPlain(v: tf.Variable, tensors: NamedTensors, name: string): void {
  checkPlain(v.shape, tensors, name);
  tf.tidy(() => v.assign(tf.tensor(tensors[name].data, v.shape, 'float32')));
}
