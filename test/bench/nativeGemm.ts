// `npx tsx test/bench/nativeGemm.ts [--threads N] [--isa NAME] [--reps N] [ADDON.node ...]`
// The native product alone, on shapes from the workloads: split by columns (n ≥ m) or by rows (the
// threads then share the packed op(B)), Bᵀ as in x·Wᵀ. Each addon given (default: the built one,
// dist/native) runs every shape in turn with the others, so that a loaded machine slows them alike.
// Prints GFLOP/s of the best run, the median ms and the median CPU ms (all threads) per product.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { NativeKernels } from '../../src/engine/kernels/nativeKernels';
import { GEMM_TRANS_B } from '../../src/engine/kernels/nativeKernels';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv.splice(i, 2)[1] : fallback;
};
const threads = Number(opt('--threads', '2'));
const reps = Number(opt('--reps', '21'));
const isaWanted = opt('--isa', '');
const files = argv.length ? argv.map((f) => path.resolve(f)) : [path.resolve(__dirname, '../../dist/native/lora_lab_native.node')];
const load = createRequire(__filename);
const addons = files.map((f) => ({ name: path.basename(path.dirname(f)) + '/' + path.basename(f), nk: load(f) as NativeKernels }));

// [m, n, k, flags]: C [m, n] = A [m, k] · op(B)
const SHAPES: [number, number, number, number][] = [
  [256, 1024, 1024, 0],
  [1024, 256, 1024, 0],
  [1024, 256, 1024, GEMM_TRANS_B],
  [2048, 256, 1024, GEMM_TRANS_B],
  [2048, 768, 768, GEMM_TRANS_B],
  [512, 64, 4096, GEMM_TRANS_B],
  [200, 190, 4096, GEMM_TRANS_B],
];

const filled = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1];
const isa = isaWanted || addons[0].nk.isa();
console.log(`native gemm: ${isa}, ${threads} thread(s), ${reps} runs each, ${addons.map((a) => a.name).join(' vs ')}`);
for (const [m, n, k, flags] of SHAPES) {
  const a = filled(m * k);
  const b = filled(k * n);
  const c = new Float32Array(m * n);
  const flops = 2 * m * n * k;
  const inner = Math.max(1, Math.round(1e9 / flops)); // products per run: ~1 GFLOP
  const times = addons.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (let r = -1; r < reps; r++) {
    // Alternating order: neither addon always runs just after the other.
    const order = addons.map((_, i) => i);
    for (const i of r % 2 ? order : order.reverse()) {
      const { nk } = addons[i];
      nk.selectIsa(isa);
      nk.setThreads(threads);
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let j = 0; j < inner; j++) nk.gemm(a, 0, b, 0, c, 0, null, 0, 1, m, n, k, flags);
      const wall = Number(process.hrtime.bigint() - t0) / 1e6 / inner;
      const cpu = process.cpuUsage(cpu0);
      if (r < 0) continue; // warm-up: packing buffers, pool threads
      times[i].wall.push(wall);
      times[i].cpu.push((cpu.user + cpu.system) / 1e3 / inner);
    }
  }
  const shape = `${m}×${k}·${k}×${n}${flags & GEMM_TRANS_B ? ' (Bᵀ)' : ''}, split by ${n >= m ? 'columns' : 'rows'}`;
  const cols = times.map((t) => `${(flops / Math.min(...t.wall) / 1e6).toFixed(0)} GFLOP/s, ${median(t.wall).toFixed(2)} ms, cpu ${median(t.cpu).toFixed(2)} ms`);
  console.log(`  ${shape.padEnd(44)} ${cols.join(' | ')}`);
}
