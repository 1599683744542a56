// Synthetic inputs shared by the webview tests and the UI bench: a long run (a real run's folder
// with its metrics replaced by `points` generated steps) and a PEFT adapter with one d×d module.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeSafetensors } from '../../../src/formats/safetensors';

/** Loss of synthetic run k at a step: a decay with a fast wiggle (so min/max per pixel matters). */
export function syntheticLoss(k: number, step: number): number {
  return (1 + k) * Math.exp(-step / 20_000) * (1 + 0.3 * Math.sin(step * 0.37)) + 1e-3;
}

/** Copies the real run `template` to `dir` as `big-k` with `points` steps (eval every 1000). */
export function writeBigRun(template: string, dir: string, k: number, points: number): string {
  fs.cpSync(template, dir, { recursive: true });
  const info = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ ...info, name: `big-${k}`, step: points, totalSteps: points }));
  const lines: string[] = [];
  for (let step = 1; step <= points; step++) {
    const loss = syntheticLoss(k, step);
    lines.push(JSON.stringify({ step, loss, ...(step % 1000 === 0 ? { evalLoss: loss * 1.1 } : {}), lr: 1e-3 * Math.min(1, step / 1000), gradNorm: 1 + Math.cos(step), elapsedMs: step }));
  }
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  return dir;
}

/** A PEFT adapter folder with one module `proj`: A [r, d], B [d, r], alpha 16. */
export function writeSquareAdapter(dir: string, d: number, r: number): { a: Float32Array; b: Float32Array } {
  const a = Float32Array.from({ length: r * d }, (_, i) => Math.sin(i * 0.7) * 0.05);
  const b = Float32Array.from({ length: d * r }, (_, i) => Math.cos(i * 1.3) * 0.05);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 16, target_modules: ['proj'], base_model_name_or_path: 'some/model' }));
  fs.writeFileSync(
    path.join(dir, 'adapter_model.safetensors'),
    serializeSafetensors({
      'base_model.model.proj.lora_A.weight': { dtype: 'F32', shape: [r, d], data: a },
      'base_model.model.proj.lora_B.weight': { dtype: 'F32', shape: [d, r], data: b },
    }),
  );
  return { a, b };
}
