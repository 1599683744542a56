// Kernel-time profile of one causal-lm training step on a random model of a given shape (the second step;
// the first warms up): `npx tsx test/bench/profileProbe.ts '<memoryProbe request JSON>'`.
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../../src/runs/backendSetup';
import { loadHfFolder } from '../../src/io/hfFolder';
import { causalLmSessionFrom } from '../../src/models/causalLmSession';
import { weightsFromRecord } from '../../src/models/weights';
import type { ExperimentConfig } from '../../src/formats/experimentTypes';
import { keepPlainKernels } from './plainKernels';
import { gpt2ConfigJson, llama1bConfigJson, parseConfigJson, randomCheckpoint } from './randomModel';
import type { ProbeRequest } from './memoryProbe';

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2] ?? '{}') as ProbeRequest;
  const putBackPlain = keepPlainKernels(req.plainKernels);
  await startBackend({ prefer: req.backend ?? 'wasm', threads: req.threads, native: req.native ?? true });
  putBackPlain();
  const folder = req.folder ? await loadHfFolder(req.folder) : undefined;
  const hf = folder ? folder.config : parseConfigJson(req.model === 'gpt2' ? gpt2ConfigJson(req.over) : llama1bConfigJson(req.over));
  const config: ExperimentConfig = {
    name: 'profile',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath: 'random', dataset: { path: 'random.txt', seqLen: req.seqLen, evalFraction: 0, tokenizer: 'bytes' } },
    lora: { r: req.r ?? 8, alpha: 2 * (req.r ?? 8), scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: req.targets ?? [], trainBias: false },
    optimizer: { name: 'adamw', lr: 1e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: 2, batchSize: req.batch, seed: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 1, gradientCheckpointing: req.checkpoint === true },
  };
  let text = '';
  for (let i = 0; text.length < (req.batch + 4) * req.seqLen * 4; i++) text += `sample ${i} of the probe text, ${(i * 7919) % 1000}. `;
  const session = causalLmSessionFrom(config, { folder: folder ?? { config: hf, weights: weightsFromRecord(randomCheckpoint(hf, 1)), weightFiles: ['random'] }, modelPath: req.folder ?? 'random', datasetPath: 'random.txt', datasetText: text });
  const it = session.run()[Symbol.asyncIterator]();
  await it.next();
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    await it.next();
  });
  const wall = performance.now() - t0;
  const by = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('x')}`;
    const e = by.get(key) ?? { ms: 0, n: 0 };
    e.ms += (k.kernelTimeMs as number) || 0;
    e.n++;
    by.set(key, e);
  }
  const byName = new Map<string, number>();
  for (const k of info.kernels) byName.set(k.name, (byName.get(k.name) ?? 0) + ((k.kernelTimeMs as number) || 0));
  const total = [...by.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`wall ${wall.toFixed(0)} ms (profiled), kernel total ${total.toFixed(0)} ms, ${info.kernels.length} kernels`);
  console.log([...byName.entries()].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(0)}`).join(', '));
  for (const [k, e] of [...by.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30)) console.log(`${e.ms.toFixed(1).padStart(9)} ms  x${e.n}  ${k}`);
  session.dispose();
}
void main();
