// The fused LayerNorm / RMSNorm of ../norm.ts (kernels of our own), forward and backward, each one
// pass of the native kernels over the heap. Without the native kernels there are none, and norm.ts
// computes the norms op by op.
import * as tf from '@tensorflow/tfjs-core';
import { NORM, NORM_GRAD } from '../norm';
import type { WasmKernelDeps, WasmKernelGroup } from './kernelGroup';

/** x [..., dim], w and b [dim] → rows and dim; throws on a dtype or shape the kernels do not take. */
function normShapes(x: tf.TensorInfo, w: tf.TensorInfo, b?: tf.TensorInfo): { rows: number; dim: number } {
  const dim = x.shape[x.shape.length - 1];
  for (const t of [x, w, ...(b ? [b] : [])]) if (t.dtype !== 'float32') throw new Error(`fused norm: inputs must be float32, got ${t.dtype}`);
  if (w.shape.length !== 1 || w.shape[0] !== dim || (b && (b.shape.length !== 1 || b.shape[0] !== dim))) {
    throw new Error(`fused norm: weight [${w.shape}]${b ? ` and bias [${b.shape}]` : ''} should be [${dim}] for x [${x.shape}]`);
  }
  return { rows: dim ? tf.util.sizeFromShape(x.shape) / dim : 0, dim };
}

export function normKernels({ internals, native }: WasmKernelDeps): WasmKernelGroup {
  if (!native) return { overrides: [], added: [] };

  // x [..., dim], w and b [dim] → y [..., dim] and stats [rows, 2].
  const norm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    const wi = internals(backend);
    const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b?: tf.TensorInfo };
    const { eps, center } = attrs as unknown as { eps: number; center: boolean };
    const { rows, dim } = normShapes(x, w, b);
    const y = wi.makeOutput(x.shape, 'float32');
    const st = wi.makeOutput([rows, 2], 'float32');
    const heap = wi.heap(wi.heapEnd([x, w, ...(b ? [b] : []), y, st])); // after makeOutput
    if (rows > 0) native.norm(heap, wi.offset(x), heap, wi.offset(w), b ? heap : null, b ? wi.offset(b) : 0, heap, wi.offset(y), heap, wi.offset(st), rows, dim, eps, center ? 1 : 0);
    return [y, st];
  };

  const normGrad: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    const wi = internals(backend);
    const { dy, x, w, s: st } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; w: tf.TensorInfo; s: tf.TensorInfo };
    const { center, hasBias } = attrs as unknown as { center: boolean; hasBias: boolean };
    const { rows, dim } = normShapes(x, w);
    if (!tf.util.arraysEqual(dy.shape, x.shape)) throw new Error(`fused norm: dy [${dy.shape}] should be x's shape [${x.shape}]`);
    const dx = wi.makeOutput(x.shape, 'float32');
    const dw = wi.makeOutput([dim], 'float32');
    const db = hasBias ? wi.makeOutput([dim], 'float32') : undefined;
    const outs = [dx, dw, ...(db ? [db] : [])];
    const heap = wi.heap(wi.heapEnd([dy, x, w, st, ...outs])); // after makeOutput
    native.normGrad(
      heap, wi.offset(dy), heap, wi.offset(x), heap, wi.offset(w), heap, wi.offset(st), heap, wi.offset(dx),
      heap, wi.offset(dw), db ? heap : null, db ? wi.offset(db) : 0, rows, dim, center ? 1 : 0,
    );
    return outs;
  };

  return {
    overrides: [],
    added: [
      [NORM, norm],
      [NORM_GRAD, normGrad],
    ],
  };
}
