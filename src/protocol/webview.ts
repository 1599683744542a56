// Messages between the extension host (src/views/dashboardPanel.ts) and the dashboard webview
// (webview-ui/). One direction per union, discriminated by `type` (STYLE.md §4). The same
// DashboardSnapshot is embedded in the standalone HTML report (`lora-lab report`).
//
// Flow: the webview sends `ready` (a request) and gets `didSnapshot` back with the full state; then
// the host pushes throttled `didAppendMetrics` / `didUpdateSource` events. ΔW is never sent as a
// k×d product: the webview asks for the factors of one checkpoint (`factorsRequest`) and builds
// the heatmap itself, off its UI thread.
import type { RunInfo } from './runFormat';
import type { Matrix, ModuleFactors } from '../shared/matrix';
import type { MetricColumns } from '../shared/metricColumns';
import type { MemorySummary } from '../shared/memorySummary';
import type { EncodedFactors, EncodedMatrix, PackedMetrics } from '../shared/reportEncoding';
import { ReasonError } from '../shared/errors';

// Payload types that live in src/shared with the code that builds and encodes them.
export type { Matrix, MemorySummary, MetricColumns, ModuleFactors };

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
  /**
   * A causal-lm run's memory estimate (src/formats/memoryEstimate.ts) from its config.json and the base
   * model's, on the backend run.json records; absent when the base model's config.json is not on disk.
   */
  memory?: MemorySummary;
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
export class ProtocolError extends ReasonError<'protocol'> {
  static override readonly family = 'ProtocolError';
  constructor(message: string) {
    super('protocol', message);
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

// ---------------------------------------------------------------- the standalone report
// `lora-lab report` embeds everything the webview would request as JSON inside the HTML file
// (encoded by src/shared/reportEncoding.ts).

export interface ReportData {
  /** Sources carry no `metrics` here: they are in `metrics`, packed. */
  snapshot: DashboardSnapshot;
  metrics?: Record<string, PackedMetrics>;
  /** factors[sourceId][step] */
  factors: Record<string, Record<string, EncodedFactors[]>>;
  references: Record<string, { module: string; kind: ReferenceInfo['kind']; matrix: EncodedMatrix }[]>;
}
