// Tiny experiment files for the runs/CLI/worker tests: small enough that a run takes well under a second
// on the cpu backend, big enough that loss, eval and checkpoints all happen. Also what the fault and
// crash tests share: a run's outcome, to compare with an uninterrupted one.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseSafetensors } from '../../../src/formats/safetensors';
import type { MetricPoint } from '../../../src/protocol/runFormat';
import { loadRun } from '../../../src/runs/runStore';

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

/** LORA_LAB_FAULT_CAMPAIGN=1: the fault and crash tests run their whole campaign, not a seeded slice. */
export const FAULT_CAMPAIGN = process.env.LORA_LAB_FAULT_CAMPAIGN === '1';

/** Every tensor of an adapter folder's adapter_model.safetensors, as plain numbers. */
export function adapterTensors(dir: string): Record<string, number[]> {
  const st = parseSafetensors(fs.readFileSync(path.join(dir, 'adapter_model.safetensors')));
  return Object.fromEntries(st.names().map((n) => [n, Array.from(st.toFloat32(n))]));
}

/** What a run ended with: its metrics (no wall-clock times) and its adapter, bit for bit. */
export interface RunOutcome {
  metrics: ReturnType<typeof curve>;
  adapter: Record<string, number[]>;
}

export function runOutcome(runDir: string): RunOutcome {
  const run = loadRun(runDir);
  assert.ok(run.adapterDir, `${runDir} has no adapter`);
  return { metrics: curve(run.metrics), adapter: adapterTensors(run.adapterDir) };
}

/** A run that went through faults, kills or a resume ends exactly as the uninterrupted `ref`. */
export function assertSameOutcome(runDir: string, ref: RunOutcome, where: string): void {
  const got = runOutcome(runDir);
  assert.deepEqual(got.metrics, ref.metrics, `${where}: same metrics as the uninterrupted run`);
  assert.deepEqual(got.adapter, ref.adapter, `${where}: same adapter as the uninterrupted run`);
}
