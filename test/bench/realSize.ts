// Benchmarks (e) and (f): LoRA on real model sizes against transformers + PEFT on the same folder.
//   (e)      GPT-2 124M shape (F32), B8 × T512, LoRA r 8 on c_attn, AdamW
//   (e-all)  the same with LoRA on every linear layer (c_attn, c_proj, c_fc)
//   (f)      Llama-3.2-1B shape (BF16, tied, RoPE θ 500000), B1 × T512, LoRA r 16 on q, k, v, o, AdamW;
//            the reference runs in F32 and, where its CPU path runs, in BF16
// Each model is written from a seed into a temporary folder (safetensors), then trained in a fresh
// process per side (test/bench/memoryProbe.ts; test/bench/hf_reference.py with ../shared/pystack/python),
// each on `threads` threads, reporting ms per step (median after the first) and the process's peak RSS.
// LORA_LAB_BENCH_SCALE=small shrinks every shape (layers, width, vocab) for a quick check of the harness.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gpt2ConfigJson, llama1bConfigJson, writeRandomModelFolder } from './randomModel';
import type { ProbeResult } from './memoryProbe';

export const REAL_SIZE_WORKLOADS = ['e', 'e-all', 'f'] as const;
export type RealSizeName = (typeof REAL_SIZE_WORKLOADS)[number];

interface RealSizeSpec {
  name: RealSizeName;
  title: string;
  family: 'gpt2' | 'llama';
  raw: Record<string, unknown>;
  dtype: 'F32' | 'BF16';
  batch: number;
  seqLen: number;
  r: number;
  targets: string[];
  /** Reference dtypes to run (f: F32 and BF16). */
  refDtypes: ('float32' | 'bfloat16')[];
}

const SMALL = process.env.LORA_LAB_BENCH_SCALE === 'small';

function specs(): RealSizeSpec[] {
  const gpt2 = gpt2ConfigJson(SMALL ? { n_layer: 2, n_embd: 256, n_head: 4, vocab_size: 8000 } : {});
  const llama = llama1bConfigJson(SMALL ? { num_hidden_layers: 2, hidden_size: 512, intermediate_size: 1024, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 16000 } : {});
  return [
    { name: 'e', title: '(e) GPT-2 124M, B8×T512, LoRA r 8 on c_attn', family: 'gpt2', raw: gpt2, dtype: 'F32', batch: SMALL ? 2 : 8, seqLen: SMALL ? 128 : 512, r: 8, targets: ['c_attn'], refDtypes: ['float32'] },
    { name: 'e-all', title: '(e) GPT-2 124M, B8×T512, LoRA r 8 on every linear layer', family: 'gpt2', raw: gpt2, dtype: 'F32', batch: SMALL ? 2 : 8, seqLen: SMALL ? 128 : 512, r: 8, targets: ['c_attn', 'c_proj', 'c_fc'], refDtypes: ['float32'] },
    { name: 'f', title: '(f) Llama-3.2-1B (BF16), B1×T512, LoRA r 16 on q, k, v, o', family: 'llama', raw: llama, dtype: 'BF16', batch: 1, seqLen: SMALL ? 128 : 512, r: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], refDtypes: ['float32', 'bfloat16'] },
  ];
}

export interface SideResult {
  msPerStep?: number;
  rssPeakBytes?: number;
  losses?: number[];
  error?: string;
}

export interface RealSizeReport {
  workload: RealSizeName;
  title: string;
  threads: number;
  ours: SideResult & { heapBytes?: number; estimateBytes?: number; checkpoint: boolean };
  reference: Record<string, SideResult>;
  loadAvg: [number, number];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): { json?: Record<string, unknown>; error?: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: timeoutMs, maxBuffer: 64 << 20 });
  const line = (r.stdout ?? '').split('\n').reverse().find((l) => l.startsWith('{'));
  if (r.status === 0 && line) return { json: JSON.parse(line) as Record<string, unknown> };
  const why = r.error?.message ?? (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
  return { error: `${path.basename(cmd)} exited ${r.status ?? r.signal}: ${why}` };
}

const PYTHON = path.resolve(__dirname, '../../../shared/pystack/python');
const ROOT = path.resolve(__dirname, '../..');

export function runRealSize(names: string[], threads: number, steps = 3, log: (s: string) => void = () => undefined): RealSizeReport[] {
  const out: RealSizeReport[] = [];
  const folders = new Map<string, string>();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-realsize-'));
  const threadEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  try {
    for (const spec of specs().filter((s) => names.includes(s.name))) {
      const key = `${spec.family}-${spec.dtype}`;
      let dir = folders.get(key);
      if (!dir) {
        dir = path.join(tmp, key);
        const t = Date.now();
        const bytes = writeRandomModelFolder(dir, spec.raw, spec.dtype, 1);
        log(`  wrote ${key} (${(bytes / 2 ** 30).toFixed(2)} GiB) in ${((Date.now() - t) / 1000).toFixed(0)} s`);
        folders.set(key, dir);
      }
      const load0 = os.loadavg()[0];
      // Ours: checkpointing where the estimate says the activations would not fit otherwise (train refuses).
      const ours: RealSizeReport['ours'] = { checkpoint: false };
      for (const checkpoint of [false, true]) {
        const req = { model: spec.family, folder: dir, batch: spec.batch, seqLen: spec.seqLen, steps, r: spec.r, targets: spec.targets, threads, checkpoint };
        const r = runJson(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(__dirname, 'memoryProbe.ts'), JSON.stringify(req)], threadEnv, 3_600_000);
        const p = r.json as unknown as ProbeResult | undefined;
        Object.assign(ours, { checkpoint, error: r.error });
        if (p) Object.assign(ours, { msPerStep: median(p.msPerStep.slice(1)), rssPeakBytes: p.rssPeakBytes, losses: p.losses, heapBytes: p.heapBytes, estimateBytes: p.estimate.total, error: undefined });
        if (p || !/cannot fit in memory/.test(r.error ?? '')) break;
      }
      const reference: Record<string, SideResult> = {};
      for (const dtype of spec.refDtypes) {
        const req = { folder: dir, batch: spec.batch, seqLen: spec.seqLen, steps, r: spec.r, alpha: 2 * spec.r, targets: spec.targets, threads, dtype };
        const r = fs.existsSync(PYTHON) ? runJson(PYTHON, [path.join(__dirname, 'hf_reference.py'), JSON.stringify(req)], threadEnv, 3_600_000) : { error: `${PYTHON} not found` };
        const j = r.json as { msPerStep: number[]; rssPeakBytes: number; losses: number[] } | undefined;
        reference[dtype] = j ? { msPerStep: median(j.msPerStep.slice(1)), rssPeakBytes: j.rssPeakBytes, losses: j.losses } : { error: r.error };
      }
      out.push({ workload: spec.name, title: SMALL ? `${spec.title} [LORA_LAB_BENCH_SCALE=small: shrunk shapes]` : spec.title, threads, ours, reference, loadAvg: [load0, os.loadavg()[0]] });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

export function formatRealSize(r: RealSizeReport): string[] {
  const gib = (b?: number) => (b === undefined ? '—' : `${(b / 2 ** 30).toFixed(2)} GiB`);
  const ms = (m?: number) => (m === undefined ? '—' : `${m.toFixed(0)} ms`);
  const lines = [`\n${r.title}  (${r.threads} thread${r.threads === 1 ? '' : 's'}, load ${r.loadAvg[0].toFixed(1)} → ${r.loadAvg[1].toFixed(1)})`];
  const o = r.ours;
  lines.push(`  ${'ours' + (o.checkpoint ? ' (gradient checkpointing)' : '')}`.padEnd(46) + (o.error ? `error: ${o.error}` : `${ms(o.msPerStep).padStart(9)}  peak RSS ${gib(o.rssPeakBytes)}  heap ${gib(o.heapBytes)}  estimate ${gib(o.estimateBytes)}`));
  for (const [dtype, s] of Object.entries(r.reference)) {
    const ratio = s.msPerStep && o.msPerStep ? `  ratio time ${(o.msPerStep / s.msPerStep).toFixed(2)}, RSS ${((o.rssPeakBytes ?? 0) / (s.rssPeakBytes ?? 1)).toFixed(2)}` : '';
    lines.push(`  ${`transformers + PEFT (${dtype})`.padEnd(44)}${s.error ? `error: ${s.error}` : `${ms(s.msPerStep).padStart(9)}  peak RSS ${gib(s.rssPeakBytes)}${ratio}`}`);
  }
  return lines;
}

if (require.main === module) {
  const names = (process.argv[2] ?? 'e,f').split(',');
  const threads = Number(process.argv[3] ?? 1);
  for (const r of runRealSize(names, threads, 3, (s) => console.log(s))) for (const l of formatRealSize(r)) console.log(l);
}
