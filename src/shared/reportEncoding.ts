// How `lora-lab report` embeds what the webview would request inside the HTML file: JSON, with
// matrices and metric columns as base64 of little-endian float32 bytes. Encoded by the CLI, decoded by
// the webview (src/protocol's ReportData is the whole). Pure: no tfjs, no node built-ins, no vscode.
import { ReasonError } from './errors';
import type { Matrix, ModuleFactors } from './matrix';
import type { MetricColumns } from './metricColumns';

/** Report data that does not decode: bad base64, or a matrix whose byte count does not fit its shape. */
export class ReportDataError extends ReasonError<'report-data'> {
  static override readonly family = 'ReportDataError';
  constructor(message: string) {
    super('report-data', message);
  }
}

/** A Matrix inside report JSON. */
export interface EncodedMatrix {
  shape: [number, number];
  f32: string;
}

export interface EncodedFactors {
  module: string;
  scale: number;
  a?: EncodedMatrix;
  b?: EncodedMatrix;
  delta?: EncodedMatrix;
}

/** Metric columns as float32 base64 (half the size of JSON numbers); NaN marks a missing eval loss. */
export interface PackedMetrics {
  n: number;
  step: string;
  loss: string;
  evalLoss: string;
  lr: string;
  gradNorm: string;
  elapsedMs: string;
}


const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function bytesToBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=') + '=';
  }
  return out;
}

export function base64ToBytes(s: string): Uint8Array {
  const clean = s.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  const lut = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) lut[B64.charCodeAt(i)] = i;
  let o = 0;
  for (let i = 0; i < clean.length; i += 4) {
    const c0 = lut[clean.charCodeAt(i)];
    const c1 = lut[clean.charCodeAt(i + 1)];
    const c2 = i + 2 < clean.length ? lut[clean.charCodeAt(i + 2)] : 0;
    const c3 = i + 3 < clean.length ? lut[clean.charCodeAt(i + 3)] : 0;
    if (c0 < 0 || c1 < 0 || c2 < 0 || c3 < 0) throw new ReportDataError(`report data: invalid base64 at character ${i}`);
    const n = (c0 << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (o < out.length) out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function encodeMatrix(m: Matrix): EncodedMatrix {
  const f = Float32Array.from(m.data);
  const bytes = new Uint8Array(f.buffer);
  if (!LE) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return { shape: [m.shape[0], m.shape[1]], f32: bytesToBase64(bytes) };
}

export function decodeMatrix(e: EncodedMatrix): Matrix {
  const bytes = base64ToBytes(e.f32);
  if (bytes.length !== e.shape[0] * e.shape[1] * 4) {
    throw new ReportDataError(`report data: matrix [${e.shape.join(', ')}] should have ${e.shape[0] * e.shape[1] * 4} bytes, got ${bytes.length}`);
  }
  if (!LE) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return { shape: e.shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
}

export function packMetrics(c: MetricColumns): PackedMetrics {
  const col = (xs: readonly (number | null)[]) => encodeMatrix({ shape: [1, xs.length], data: Float32Array.from(xs, (x) => (x === null ? NaN : x)) }).f32;
  return { n: c.step.length, step: col(c.step), loss: col(c.loss), evalLoss: col(c.evalLoss), lr: col(c.lr), gradNorm: col(c.gradNorm), elapsedMs: col(c.elapsedMs) };
}

export function unpackMetrics(p: PackedMetrics): MetricColumns {
  const col = (f32: string) => Array.from(decodeMatrix({ shape: [1, p.n], f32 }).data);
  return {
    step: col(p.step),
    loss: col(p.loss),
    evalLoss: col(p.evalLoss).map((x) => (Number.isNaN(x) ? null : x)),
    lr: col(p.lr),
    gradNorm: col(p.gradNorm),
    elapsedMs: col(p.elapsedMs),
  };
}

export function encodeFactors(f: ModuleFactors): EncodedFactors {
  return {
    module: f.module,
    scale: f.scale,
    ...(f.a ? { a: encodeMatrix(f.a) } : {}),
    ...(f.b ? { b: encodeMatrix(f.b) } : {}),
    ...(f.delta ? { delta: encodeMatrix(f.delta) } : {}),
  };
}

export function decodeFactors(e: EncodedFactors): ModuleFactors {
  return {
    module: e.module,
    scale: e.scale,
    ...(e.a ? { a: decodeMatrix(e.a) } : {}),
    ...(e.b ? { b: decodeMatrix(e.b) } : {}),
    ...(e.delta ? { delta: decodeMatrix(e.delta) } : {}),
  };
}

/**
 * JSON that is safe inside `<script type="application/json">`: `<`, `>`, `&` and the JS line
 * separators are escaped, so hostile metadata such as `</script><script>…` cannot end the element.
 */
export function jsonForHtmlScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}
