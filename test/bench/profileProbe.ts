// Kernel-time profile of one causal-lm training step on a model of a given shape (the second step; the
// first warms up): `npx tsx test/bench/profileProbe.ts '<memoryProbe request JSON>'`. Nested scopes (a
// customGrad op) count their inner kernels too, so the kernel total exceeds the wall time.
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../../src/runs/backendSetup';
import { keepPlainKernels } from './plainKernels';
import { probeExperiment, probeModel, probeSession, type ProbeRequest } from './memoryProbe';

/** Prints a tf.profile result: wall time, the kernel total, ms per kernel name, then the costliest kernel-and-shape rows. */
export function printKernelProfile(info: Awaited<ReturnType<typeof tf.profile>>, wallMs: number, rows = 30): void {
  const byShape = new Map<string, { ms: number; n: number }>();
  const byName = new Map<string, number>();
  for (const k of info.kernels) {
    const ms = (k.kernelTimeMs as number) || 0;
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('x')}`;
    const e = byShape.get(key) ?? { ms: 0, n: 0 };
    e.ms += ms;
    e.n++;
    byShape.set(key, e);
    byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
  }
  const total = [...byShape.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`wall ${wallMs.toFixed(1)} ms (profiled), kernel total ${total.toFixed(1)} ms, ${info.kernels.length} kernels`);
  console.log([...byName.entries()].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(0)}`).join(', '));
  for (const [k, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, rows)) console.log(`${e.ms.toFixed(2).padStart(9)} ms  x${e.n}  ${k}`);
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2] ?? '{}') as ProbeRequest;
  const putBackPlain = keepPlainKernels(req.plainKernels);
  await startBackend({ prefer: req.backend ?? 'wasm', threads: req.threads, native: req.native ?? true });
  putBackPlain();
  const session = probeSession(req, probeExperiment({ ...req, steps: 2 }), await probeModel(req));
  const it = session.run()[Symbol.asyncIterator]();
  await it.next();
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    await it.next();
  });
  printKernelProfile(info, performance.now() - t0);
  session.dispose();
}

if (require.main === module) void main();
