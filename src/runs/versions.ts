// Versions recorded in every run.json. The package.json is found at run time by walking up from this
// file, which works from source (src/runs/), from the bundle (dist/) and inside an installed .vsix.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunInfo } from '../protocol/runFormat';

let cached: string | undefined;

/** The `version` of LoRA Lab's package.json, or "unknown" when it cannot be found. */
export function loraLabVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    try {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'lora-lab' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // not here; keep walking up
    }
    dir = path.dirname(dir);
  }
  return cached;
}

/** Versions for run.json; the tfjs version is passed in so this file (used by `--version`) stays tfjs-free. */
export function runVersions(tfjsVersion: string): RunInfo['versions'] {
  return { loraLab: loraLabVersion(), tfjs: tfjsVersion, node: process.versions.node };
}
