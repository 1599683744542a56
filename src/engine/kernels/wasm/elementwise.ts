// Elementwise kernels: Exp and Tanh (overrides), and with the native kernels the fused GELU of
// ../gelu.ts (kernels of our own), each one pass over the heap.
import * as tf from '@tensorflow/tfjs-core';
import { GELU_TANH, GELU_TANH_GRAD } from '../gelu';
import type { NativeKernels } from '../nativeKernels';
import type { WasmInternals } from './backendInternals';
import type { WasmKernelDeps, WasmKernelGroup } from './kernelGroup';

export function elementwiseKernels({ internals, original, native }: WasmKernelDeps): WasmKernelGroup {
  const origExp = original(tf.Exp);
  const origTanh = original(tf.Tanh);
  const sigmoidK = original(tf.Sigmoid);
  const multiplyK = original(tf.Multiply);
  const addK = original(tf.Add);

  // Exp (softmax, cross-entropy): tfjs's wasm kernel calls libm once per element; the native loop is
  // vectorised. Float32 only.
  const exp: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!native || x.dtype !== 'float32') return origExp.kernelFunc(args);
    const w = internals(args.backend);
    const size = tf.util.sizeFromShape(x.shape);
    const out = w.makeOutput(x.shape, 'float32');
    if (size === 0) return out;
    const xOff = w.offset(x);
    const oOff = w.offset(out);
    const heap = w.heap(Math.max(xOff, oOff) + size); // after makeOutput
    native.exp(heap, xOff, heap, oOff, size);
    return out;
  };

  const tanh: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return origTanh.kernelFunc(args);
    const w = internals(args.backend);
    // tanh(x) = 2·σ(2x) − 1: four fast elementwise passes instead of one slow libm tanh.
    const two = w.makeOutput([], 'float32', new Float32Array([2]));
    const minusOne = w.makeOutput([], 'float32', new Float32Array([-1]));
    const call = (kc: tf.KernelConfig, inputs: tf.NamedTensorInfoMap): tf.TensorInfo =>
      kc.kernelFunc({ inputs, backend: args.backend, attrs: {} }) as tf.TensorInfo;
    const x2 = call(multiplyK, { a: x, b: two });
    const s = call(sigmoidK, { x: x2 });
    const s2 = call(multiplyK, { a: s, b: two });
    const out = call(addK, { a: s2, b: minusOne });
    for (const t of [two, minusOne, x2, s, s2]) w.disposeData(t.dataId);
    return out;
  };

  return {
    overrides: [
      [tf.Exp, exp],
      [tf.Tanh, tanh],
    ],
    added: native ? geluKernels(internals, native) : [],
  };
}

/** Same-shape float32 inputs and `outs` new outputs of that shape, with their heap offsets (inputs first). */
function sameShape(w: WasmInternals, ins: tf.TensorInfo[], outs: number): { heap: Float32Array; offs: number[]; out: tf.TensorInfo[]; n: number } {
  for (const t of ins) {
    if (t.dtype !== 'float32') throw new Error(`fused GELU: inputs must be float32, got ${t.dtype}`);
    if (!tf.util.arraysEqual(t.shape, ins[0].shape)) throw new Error(`fused GELU: shapes differ: [${t.shape}] vs [${ins[0].shape}]`);
  }
  const n = tf.util.sizeFromShape(ins[0].shape);
  const out = Array.from({ length: outs }, () => w.makeOutput(ins[0].shape, 'float32'));
  const offs = [...ins, ...out].map((t) => w.offset(t));
  return { heap: w.heap(Math.max(...offs) + n), offs, out, n }; // heap after makeOutput
}

function geluKernels(internals: WasmKernelDeps['internals'], native: NativeKernels): WasmKernelGroup['added'] {
  const gelu: tf.KernelFunc = ({ inputs, backend }) => {
    const { heap, offs, out, n } = sameShape(internals(backend), [inputs.x as tf.TensorInfo], 2);
    if (n > 0) native.geluTanh(heap, offs[0], heap, offs[1], heap, offs[2], n);
    return out;
  };
  const geluGrad: tf.KernelFunc = ({ inputs, backend }) => {
    const { dy, x, s } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; s: tf.TensorInfo };
    const { heap, offs, out, n } = sameShape(internals(backend), [dy, x, s], 1);
    if (n > 0) native.geluTanhGrad(heap, offs[0], heap, offs[1], heap, offs[2], heap, offs[3], n);
    return out[0];
  };
  return [
    [GELU_TANH, gelu],
    [GELU_TANH_GRAD, geluGrad],
  ];
}
