// Real runs for the webview tests: `trainRun` (the same code `lora-lab train` runs) on tiny
// low-rank-recovery configs, cpu backend, about a second each.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainRun } from '../../../src/runs/trainRun';

export interface TinyRunOptions {
  name: string;
  r: number;
  trueRank?: number;
  steps?: number;
  inFeatures?: number;
  outFeatures?: number;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function tinyRun(outDir: string, o: TinyRunOptions): Promise<string> {
  const cfgFile = path.join(outDir, `${o.name}.lora.json`);
  const steps = o.steps ?? 60;
  fs.writeFileSync(
    cfgFile,
    JSON.stringify({
      name: o.name,
      kind: 'low-rank-recovery',
      model: { inFeatures: o.inFeatures ?? 16, outFeatures: o.outFeatures ?? 12, trueRank: o.trueRank ?? 2 },
      lora: { r: o.r, alpha: o.r },
      optimizer: { name: 'adam', lr: 0.02 },
      training: { steps, batchSize: 32, seed: 1, evalEvery: 10, checkpointEvery: steps / 3 },
    }),
  );
  const res = await trainRun({ configPath: cfgFile, outDir: path.join(outDir, 'runs'), backend: 'cpu', keepCheckpoints: 10 });
  if (res.status !== 'completed') throw new Error(`test run ${o.name} ended ${res.status}: ${res.error ?? ''}`);
  return res.runDir;
}
