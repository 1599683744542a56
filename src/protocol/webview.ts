// Messages between the extension host (src/views/dashboardPanel.ts) and the dashboard webview
// (webview-ui/). One direction per union, discriminated by `type` (STYLE.md §4). The same
// DashboardSnapshot is embedded in the standalone HTML report (`lora-lab report`).
//
// Flow: the webview sends `ready` (a request) and gets `didSnapshot` back with the full state; then
// the host pushes throttled `didAppendMetrics` / `didUpdateSource` events. ΔW is never sent as a
// k×d product: the webview asks for the factors of one checkpoint (`factorsRequest`) and builds
// the heatmap itself, off its UI thread.
import type { MetricPoint, RunInfo } from './runFormat';

/** A dense row-major 2-D matrix. Conv weights arrive flattened to [out, in·kh·kw]. */
export interface Matrix {
  shape: [number, number];
  data: Float32Array;
}

/** Metric history in columns (compact for 100k points). `null` marks a step without an eval loss. */
export interface MetricColumns {
  step: number[];
  loss: number[];
  evalLoss: (number | null)[];
  lr: number[];
  gradNorm: number[];
  elapsedMs: number[];
}

/** One adapted layer. `in`/`out` are d and k of W [k, d]; A is [r, d], B is [k, r]. */
export interface ModuleSummary {
  name: string;
  inFeatures: number;
  outFeatures: number;
  r: number;
  alpha: number;
  /** The factor s in ΔW = s·B·A. */
  scale: number;
  /** Whether the layer has a bias (counted in the "bias trained" convention). */
  hasBias: boolean;
  /** 'lora' for plain A/B; other adapter kinds (loha, lokr, …) have no factor spectrum. */
  kind: string;
  dtype?: string;
  /** The LoRA parameters actually stored (A and B, plus extras such as DoRA magnitudes). */
  storedParams?: number;
  /** false when the heatmap cannot be drawn (a LoKr/LoHa ΔW too large to ship); default true. */
  drawable?: boolean;
}

/** Singular values of ΔW for one module at one step, from the r×r Gram matrices (src/engine/spectrum.ts). */
export interface SpectrumSample {
  step: number;
  /** Descending. */
  singularValues: number[];
  /** exp(entropy of σ/Σσ) (Roy & Vetterli). */
  effectiveRank: number;
  /** Rank at tolerance: σ_i > 1e-6·σ_max (counting only the r possible values). */
  numericalRank: number;
  /** energy[i] = Σ_{j≤i} σ_j² / Σ σ² (cumulative fraction captured by the top i+1). */
  energy: number[];
  frobeniusNorm: number;
}

export interface ModuleSpectra {
  module: string;
  samples: SpectrumSample[];
}

/** A reference matrix the webview may request for one module. */
export interface ReferenceInfo {
  module: string;
  /** 'base' = frozen W, 'truth' = the true U·V of low-rank-recovery. */
  kind: 'base' | 'truth';
  shape: [number, number];
}

export interface MetadataEntry {
  key: string;
  /** Shown as text, never as HTML (real files carry `<script>`). */
  value: string;
}

export interface AdapterSummary {
  format: string;
  /** The base model the adapter needs, when the file says so. */
  baseModel?: string;
  /** Plain statement for users: an adapter alone cannot run. */
  baseModelNote: string;
  metadata: MetadataEntry[];
  warnings: string[];
  /** adapter_config.json (or similar) as text. */
  configText?: string;
}

/** One thing the dashboard shows: a training run or an adapter file/folder. */
export interface SourceSnapshot {
  /** Stable id used in requests (a hash of the path). */
  id: string;
  kind: 'run' | 'adapter';
  /** Legend label, e.g. the run name with its rank: "rank-sweep r=4". */
  label: string;
  path: string;
  run?: RunInfo;
  /** The resolved config (run.json's sibling config.json), for display. */
  config?: Record<string, unknown>;
  metrics?: MetricColumns;
  /** Steps whose factors can be requested with `factorsRequest`, ascending. */
  checkpoints: number[];
  modules: ModuleSummary[];
  /** Parameters of the whole base model, when known. */
  totalParams?: number;
  spectra: ModuleSpectra[];
  references: ReferenceInfo[];
  adapter?: AdapterSummary;
}

export interface DashboardSnapshot {
  title: string;
  generatedAt: string;
  /** True in VS Code while a run may still grow; false in the static report. */
  live: boolean;
  sources: SourceSnapshot[];
}

/** The factors of one module at one step: ΔW = scale·B·A, or `delta` for kinds that are not plain A/B. */
export interface ModuleFactors {
  module: string;
  scale: number;
  /** [r, in] */
  a?: Matrix;
  /** [out, r] */
  b?: Matrix;
  delta?: Matrix;
}

export type ToWebview =
  /** The full state; the reply to `ready`, and re-sent whenever the set of sources changes. */
  | { type: 'didSnapshot'; snapshot: DashboardSnapshot }
  /** New metric points for a live run (throttled to a few per second), and its updated RunInfo. */
  | { type: 'didAppendMetrics'; sourceId: string; metrics: MetricColumns; run?: RunInfo }
  /** A source changed (new checkpoint, spectra, status); `metrics` absent means "keep yours". */
  | { type: 'didUpdateSource'; source: SourceSnapshot }
  /** Reply to `factorsRequest`. */
  | { type: 'factorsResponse'; sourceId: string; step: number; modules: ModuleFactors[] }
  /** Reply to `referenceRequest`. */
  | { type: 'referenceResponse'; sourceId: string; module: string; kind: ReferenceInfo['kind']; matrix: Matrix }
  /** Reply to `saveExport`: where it was written, or nothing when the user cancelled. */
  | { type: 'exportSaved'; path?: string };

export type FromWebview =
  /** The webview has loaded and wants the full state (answered with `didSnapshot`). */
  | { type: 'ready' }
  /** Give me the A/B factors of every module of `sourceId` at checkpoint `step`. */
  | { type: 'factorsRequest'; sourceId: string; step: number }
  /** Give me the base W or the true ΔW of one module. */
  | { type: 'referenceRequest'; sourceId: string; module: string; kind: ReferenceInfo['kind'] }
  /** A message for the host's log (webview errors). */
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  /** Save a chart's export (CSV text or PNG bytes as base64) where the user picks; answered with `exportSaved`. */
  | { type: 'saveExport'; fileName: string; mime: ExportMime; data: string };

/** What a chart exports: its data as CSV, its picture as PNG (base64 in messages). */
export type ExportMime = 'text/csv' | 'image/png';

/** Exports above this many characters are refused (a 100k-point, 4-run CSV is ~20 MB). */
export const MAX_EXPORT_CHARS = 64 * 1024 * 1024;

/** Thrown by `validateFromWebview` for anything that is not a well-formed FromWebview message. */
export class ProtocolError extends Error {
  readonly reason = 'protocol';
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
  static is(e: unknown): e is ProtocolError {
    return e instanceof ProtocolError;
  }
}

const MAX_STRING = 4096;

function str(o: Record<string, unknown>, key: string, type: string, max = MAX_STRING): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ProtocolError(`webview message '${type}': field '${key}' should be a string, got ${typeof v}`);
  if (v.length > max) throw new ProtocolError(`webview message '${type}': field '${key}' is too long (${v.length} > ${max} characters)`);
  return v;
}

/**
 * The webview is untrusted input (STYLE.md §13): accept only known message types with fields of
 * the right type and size, and copy them into fresh objects (no prototype tricks pass through).
 */
export function validateFromWebview(raw: unknown): FromWebview {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProtocolError(`webview message should be an object, got ${raw === null ? 'null' : typeof raw}`);
  }
  const o = raw as Record<string, unknown>;
  const type = o.type;
  switch (type) {
    case 'ready':
      return { type };
    case 'factorsRequest': {
      const step = o.step;
      if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
        throw new ProtocolError(`webview message 'factorsRequest': field 'step' should be a non-negative integer, got ${JSON.stringify(step)}`);
      }
      return { type, sourceId: str(o, 'sourceId', type, 128), step };
    }
    case 'referenceRequest': {
      const kind = o.kind;
      if (kind !== 'base' && kind !== 'truth') {
        throw new ProtocolError(`webview message 'referenceRequest': field 'kind' should be 'base' or 'truth', got ${JSON.stringify(kind)}`);
      }
      return { type, sourceId: str(o, 'sourceId', type, 128), module: str(o, 'module', type, 1024), kind };
    }
    case 'log': {
      const level = o.level;
      if (level !== 'info' && level !== 'warn' && level !== 'error') {
        throw new ProtocolError(`webview message 'log': field 'level' should be 'info', 'warn' or 'error', got ${JSON.stringify(level)}`);
      }
      return { type, level, message: str(o, 'message', type) };
    }
    case 'saveExport': {
      const mime = o.mime;
      if (mime !== 'text/csv' && mime !== 'image/png') {
        throw new ProtocolError(`webview message 'saveExport': field 'mime' should be 'text/csv' or 'image/png', got ${JSON.stringify(mime)}`);
      }
      const fileName = str(o, 'fileName', type, 128);
      const ext = mime === 'text/csv' ? 'csv' : 'png';
      if (!new RegExp(`^[\\w.-]+\\.${ext}$`).test(fileName) || fileName.startsWith('.')) {
        throw new ProtocolError(`webview message 'saveExport': field 'fileName' should be a plain file name ending in .${ext}, got ${JSON.stringify(fileName.slice(0, 64))}`);
      }
      const data = str(o, 'data', type, MAX_EXPORT_CHARS);
      if (mime === 'image/png' && !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw new ProtocolError(`webview message 'saveExport': field 'data' of a PNG should be base64`);
      return { type, fileName, mime, data };
    }
    default:
      throw new ProtocolError(`unknown webview message type ${JSON.stringify(typeof type === 'string' ? type.slice(0, 64) : type)}`);
  }
}

/** Metric points → columns (missing eval loss → null). */
export function toMetricColumns(points: readonly MetricPoint[]): MetricColumns {
  const c: MetricColumns = { step: [], loss: [], evalLoss: [], lr: [], gradNorm: [], elapsedMs: [] };
  for (const p of points) appendMetricPoint(c, p);
  return c;
}

export function appendMetricPoint(c: MetricColumns, p: MetricPoint): void {
  c.step.push(p.step);
  c.loss.push(p.loss);
  c.evalLoss.push(typeof p.evalLoss === 'number' && Number.isFinite(p.evalLoss) ? p.evalLoss : null);
  c.lr.push(p.lr);
  c.gradNorm.push(p.gradNorm);
  c.elapsedMs.push(p.elapsedMs);
}

/**
 * Appends `more` to `into`. A resumed run re-logs from its last checkpoint: points of `into` at or
 * after the first new step are replaced, so the history matches metrics.jsonl. Returns the index
 * from which `into` changed (its old length when nothing was replaced).
 */
export function mergeMetricColumns(into: MetricColumns, more: MetricColumns): number {
  if (more.step.length === 0) return into.step.length;
  const first = more.step[0];
  let keep = into.step.length;
  while (keep > 0 && into.step[keep - 1] >= first) keep--;
  const keys = ['step', 'loss', 'evalLoss', 'lr', 'gradNorm', 'elapsedMs'] as const;
  for (const k of keys) {
    const dst = into[k] as unknown[];
    const src = more[k] as unknown[];
    dst.length = keep;
    for (let i = 0; i < src.length; i++) dst.push(src[i]);
  }
  return keep;
}

// ---------------------------------------------------------------- the standalone report
// `lora-lab report` embeds everything the webview would request as JSON inside the HTML file, with
// matrices as base64 of little-endian float32 bytes.

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

export interface ReportData {
  /** Sources carry no `metrics` here: they are in `metrics`, packed. */
  snapshot: DashboardSnapshot;
  metrics?: Record<string, PackedMetrics>;
  /** factors[sourceId][step] */
  factors: Record<string, Record<string, EncodedFactors[]>>;
  references: Record<string, { module: string; kind: ReferenceInfo['kind']; matrix: EncodedMatrix }[]>;
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
    if (c0 < 0 || c1 < 0 || c2 < 0 || c3 < 0) throw new ProtocolError(`report data: invalid base64 at character ${i}`);
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
    throw new ProtocolError(`report data: matrix [${e.shape.join(', ')}] should have ${e.shape[0] * e.shape[1] * 4} bytes, got ${bytes.length}`);
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
