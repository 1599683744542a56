// One benchmark case in a fresh process (so backends, kernel overrides and memory peaks of one
// case never leak into another). Spawned by test/bench/bench.ts with one JSON argument; prints one
// JSON line: CaseResult.
import * as tf from '@tensorflow/tfjs-core';
import { Adam, buildWorkload, flopsPerStep, trainStep, workloadByName, type Formulation, type WorkloadSpec } from './workloads';
import { initBenchBackend, type BenchBackend } from './benchBackend';

export interface CaseRequest {
  workload: string;
  form: Formulation;
  backend: BenchBackend;
  /** wasm only: register src/engine/kernels fast kernels. */
  fastKernels: boolean;
  /** wasm only: matrix products on the native kernels (with fastKernels). */
  native?: boolean;
  threads: number;
  minSteps: number;
  minMs: number;
  /** Steps before timing (XNNPACK packing, kernel set-up). Default 2. */
  warmup?: number;
  /** Also measure peak tensor memory of one step, LoRA vs full fine-tune of the same model. */
  memory?: boolean;
  /** Override spec fields (scaling runs). */
  overrides?: Record<string, number>;
}

export interface CaseResult {
  request: CaseRequest;
  backend: string;
  threads?: number;
  notes: string[];
  msPerStep: number;
  /** Fastest step: less sensitive to other processes on a shared machine than the median. */
  msMin: number;
  /** CPU time per step (all threads): with one thread, barely moved by other processes' load. */
  cpuMsPerStep: number;
  steps: number;
  gflops: number;
  flopsPerStep: number;
  firstLoss: number;
  lastLoss: number;
  memory?: { loraPeakBytes: number; loraStateBytes: number; fullPeakBytes: number; fullStateBytes: number };
  error?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Peak tensor bytes during one step and bytes held by parameters + optimizer state. */
async function measureMemory(spec: WorkloadSpec, form: Formulation): Promise<{ peak: number; state: number }> {
  const w = buildWorkload(spec, form);
  const opt = new Adam(w.trainable, 1e-3, form !== 'naive');
  trainStep(w, opt); // optimizer state exists from here on
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => {
    trainStep(w, opt);
  });
  const state = before;
  w.dispose();
  opt.dispose();
  return { peak: info.peakBytes, state };
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2]) as CaseRequest;
  const base = workloadByName(req.workload);
  const spec = { ...base, ...(req.overrides ?? {}) } as WorkloadSpec;
  const be = await initBenchBackend(req.backend, req.threads, req.fastKernels, req.native ?? false);
  const result: Partial<CaseResult> = { request: req, backend: be.name, threads: be.threads, notes: be.notes };
  const w = buildWorkload(spec, req.form);
  const opt = new Adam(w.trainable, 1e-3, req.form !== 'naive');
  const losses: number[] = [];
  for (let i = 0; i < (req.warmup ?? 2); i++) losses.push(trainStep(w, opt)); // warm-up: XNNPACK packing, kernel setup
  const times: number[] = [];
  const cpuTimes: number[] = [];
  const start = performance.now();
  while (times.length < req.minSteps || performance.now() - start < req.minMs) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    losses.push(trainStep(w, opt));
    const c = process.cpuUsage(c0);
    times.push(performance.now() - t0);
    cpuTimes.push((c.user + c.system) / 1000);
    if (times.length >= 200) break;
  }
  w.dispose();
  opt.dispose();
  const flops = flopsPerStep(spec);
  const ms = median(times);
  Object.assign(result, {
    msPerStep: ms, msMin: Math.min(...times), cpuMsPerStep: median(cpuTimes), steps: times.length, flopsPerStep: flops, gflops: flops / ms / 1e6,
    firstLoss: losses[0], lastLoss: losses[losses.length - 1],
  });
  if (req.memory && spec.kind === 'transformer') {
    const lora = await measureMemory(spec, req.form);
    const full = await measureMemory({ ...spec, fullFinetune: true }, 'naive');
    result.memory = { loraPeakBytes: lora.peak, loraStateBytes: lora.state, fullPeakBytes: full.peak, fullStateBytes: full.state };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

// Exit explicitly: the threaded wasm build's pthread workers would keep the process alive.
main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }) + '\n');
    process.exit(1);
  },
);
