// Tiny experiment files for the runs/CLI/worker tests: small enough that a run takes well under a second
// on the cpu backend, big enough that loss, eval and checkpoints all happen.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MetricPoint } from '../../../src/protocol/runFormat';

export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** `--import <tsx loader>` by absolute path: the child's cwd need not be the repo. */
export const TSX_IMPORT = ['--import', pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href];

export interface TinyOptions {
  name?: string;
  steps?: number;
  d?: number;
  batchSize?: number;
  checkpointEvery?: number;
  evalEvery?: number;
  logEvery?: number;
  optimizer?: Record<string, unknown>;
}

/** An experiment file as a user would write it (the file format of schemas/experiment.schema.json). */
export function tinyExperiment(o: TinyOptions = {}): Record<string, unknown> {
  const d = o.d ?? 16;
  return {
    name: o.name ?? 'tiny',
    kind: 'low-rank-recovery',
    model: { inFeatures: d, outFeatures: d, trueRank: 2 },
    lora: { r: 2, alpha: 2 },
    optimizer: o.optimizer ?? { name: 'adam', lr: 0.01 },
    training: {
      steps: o.steps ?? 40,
      batchSize: o.batchSize ?? 16,
      seed: 11,
      evalEvery: o.evalEvery ?? 10,
      checkpointEvery: o.checkpointEvery ?? 10,
      logEvery: o.logEvery ?? 1,
    },
  };
}

export function makeTmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lora-lab-${prefix}-`));
}

/** Write `config` as `<dir>/<file>` and return its path. */
export function writeExperiment(dir: string, config: Record<string, unknown>, file = 'tiny.lora.json'): string {
  const p = path.join(dir, file);
  fs.writeFileSync(p, JSON.stringify(config, null, 2));
  return p;
}

/** Metric points without the wall-clock field, for comparing two runs. */
export function curve(points: MetricPoint[]): Omit<MetricPoint, 'elapsedMs'>[] {
  return points.map(({ elapsedMs: _e, ...rest }) => rest);
}
