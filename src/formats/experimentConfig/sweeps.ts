// Sweeps: a field whose schema type is a scalar, given as a list (`"lora": {"r": [1, 2, 4, 8]}`),
// makes one run per value; several such lists make every combination.
import { EXPERIMENT_KINDS, schemaInfoAt } from './schema';
import type { ExperimentConfig, ExperimentKind } from '../experimentTypes';

/** One run of a sweep: the listed values it takes and the config they make (its name says them). */
export interface SweepVariant {
  /** e.g. `lora.r = 4` (`, `-joined when several fields are lists). */
  label: string;
  settings: { path: string; value: unknown }[];
  config: ExperimentConfig;
}

/** More runs than this from one config is almost certainly a mistake (a long list pasted in a field). */
export const MAX_SWEEP_RUNS = 64;

export interface SweepAxis {
  path: (string | number)[];
  values: unknown[];
}

const SCALAR_TYPES = new Set(['integer', 'number', 'string', 'boolean']);

/** The fields of a parsed config file given as lists where the schema expects one value, in document order. */
export function findSweepAxes(value: unknown): SweepAxis[] {
  const out: SweepAxis[] = [];
  const root = value as Record<string, unknown>;
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return out;
  const kind = EXPERIMENT_KINDS.includes(root.kind as ExperimentKind) ? (root.kind as ExperimentKind) : undefined;
  const walk = (node: unknown, path: string[]): void => {
    if (typeof node !== 'object' || node === null) return;
    if (Array.isArray(node)) {
      const info = path.length ? schemaInfoAt(path, kind) : undefined;
      if (info && ((info.type !== undefined && SCALAR_TYPES.has(info.type)) || (info.type === undefined && info.enum)) && node.every((x) => x === null || typeof x !== 'object')) out.push({ path, values: node });
      return;
    }
    for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
  };
  walk(root, []);
  return out;
}

/** A run name's part for one value: the value itself for words ("adam"), key and value for numbers ("r4"). */
export function sweepValueText(path: string, v: unknown): string {
  return typeof v === 'string' ? v : `${path.split('.').pop()}${String(v)}`;
}

export function* combinations(sizes: number[]): Generator<number[]> {
  const idx = sizes.map(() => 0);
  for (;;) {
    yield [...idx];
    let i = sizes.length - 1;
    while (i >= 0 && ++idx[i] === sizes[i]) idx[i--] = 0;
    if (i < 0) return;
  }
}

export function setAtPath(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  node[path[path.length - 1]] = value;
}
