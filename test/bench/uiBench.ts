// The dashboard's speed budgets, measured on the pure parts in Node (no DOM here):
//   - the adapter browser lists 500 adapter folders, headers only (< 1 s);
//   - a 1024×1024 ΔW heatmap: B·A, block reduction, RGBA pixels (< 200 ms; the canvas blit is not
//     measured);
//   - 100,000 loss points prepared for redraw: EMA + min/max decimation + column picks (< 50 ms;
//     uPlot's own drawing needs a DOM and is not measured);
//   - one safetensors header read from a 6 GiB (sparse) file (< 5 ms): the unit test checks that only
//     the header's bytes are read, this row how long that takes.
// Modules are imported lazily: a missing one gives a "skipped" row, not a failed bench.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface UiResult {
  name: string;
  ms?: number;
  targetMs: number;
  error?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function timeIt(f: () => unknown | Promise<unknown>, reps: number): Promise<number> {
  await f(); // warm-up (JIT, file cache)
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

async function adapterBrowser(): Promise<UiResult> {
  const r: UiResult = { name: 'adapter browser: 500 adapters, headers only', targetMs: 1000 };
  try {
    const { readSafetensorsHeader } = await import('../../src/io/safetensorsFile');
    const { serializeSafetensors } = await import('../../src/formats/safetensors');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-bench-adapters-'));
    try {
      // A realistic adapter: 4 projections × 2 layers, r 8, hidden 256 (≈ 260 KB each).
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (let l = 0; l < 2; l++) {
        for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
          const base = `base_model.model.model.layers.${l}.self_attn.${p}`;
          tensors[`${base}.lora_A.weight`] = { dtype: 'F32', shape: [8, 256], data: new Float32Array(8 * 256) };
          tensors[`${base}.lora_B.weight`] = { dtype: 'F32', shape: [256, 8], data: new Float32Array(256 * 8) };
        }
      }
      const bytes = serializeSafetensors(tensors, { format: 'pt' });
      const config = JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
      for (let i = 0; i < 500; i++) {
        const d = path.join(dir, `adapter-${i}`);
        fs.mkdirSync(d);
        fs.writeFileSync(path.join(d, 'adapter_model.safetensors'), bytes);
        fs.writeFileSync(path.join(d, 'adapter_config.json'), config);
      }
      r.ms = await timeIt(async () => {
        const names = await fs.promises.readdir(dir);
        await Promise.all(
          names.map(async (n) => {
            const d = path.join(dir, n);
            const [header, cfg] = await Promise.all([readSafetensorsHeader(path.join(d, 'adapter_model.safetensors')), fs.promises.readFile(path.join(d, 'adapter_config.json'), 'utf8')]);
            return { header, cfg: JSON.parse(cfg) as unknown };
          }),
        );
      }, 3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    r.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return r;
}

async function heatmap(): Promise<UiResult> {
  const r: UiResult = { name: 'ΔW heatmap 1024×1024 (r 8): B·A + blocks + RGBA', targetMs: 200 };
  try {
    const { computeHeatmap } = await import('../../webview-ui/src/heatmap/compute');
    const { paintGrid } = await import('../../webview-ui/src/heatmap/colormap');
    const rnd = lcg(7);
    const rows = 1024;
    const cols = 1024;
    const rank = 8;
    const a = Float32Array.from({ length: rank * cols }, rnd);
    const b = Float32Array.from({ length: rows * rank }, rnd);
    r.ms = await timeIt(() => {
      const g = computeHeatmap({ a, b, r: rank, scale: 2, rows, cols, maxRows: 1024, maxCols: 1024, mode: 'maxabs' });
      const px = new Uint8ClampedArray(g.grid.length * 4);
      paintGrid(g.grid, g.maxAbs, px);
    }, 5);
  } catch (e) {
    r.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return r;
}

async function lossPoints(): Promise<UiResult> {
  const r: UiResult = { name: '100,000 loss points: EMA + decimation + picks', targetMs: 50 };
  try {
    const { decimateIndices, ema, pick } = await import('../../webview-ui/src/series');
    const rnd = lcg(11);
    const n = 100_000;
    const step = Array.from({ length: n }, (_, i) => i + 1);
    const loss = step.map((s) => 3 * Math.exp(-s / 20000) + 0.1 * rnd());
    const lr = step.map(() => 1e-3);
    r.ms = await timeIt(() => {
      const smoothed = ema(loss, 0.6);
      const idx = decimateIndices(loss, 4000);
      return [pick(step, idx), pick(smoothed, idx), pick(loss, idx), pick(lr, idx)];
    }, 9);
  } catch (e) {
    r.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return r;
}

async function headerRead(): Promise<UiResult> {
  const r: UiResult = { name: 'safetensors header of a 6 GiB file (sparse)', targetMs: 5 };
  try {
    const { readSafetensorsHeader } = await import('../../src/io/safetensorsFile');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-bench-header-'));
    try {
      const f = path.join(dir, 'big.safetensors');
      const tensors: Record<string, unknown> = { __metadata__: { format: 'pt' } };
      for (let i = 0; i < 16; i++) tensors[`t${i}`] = { dtype: 'F32', shape: [3 * 2 ** 25], data_offsets: [i * 3 * 2 ** 27, (i + 1) * 3 * 2 ** 27] };
      const json = JSON.stringify(tensors);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      fs.writeFileSync(f, Buffer.concat([prefix, Buffer.from(json)]));
      fs.truncateSync(f, 8 + Buffer.byteLength(json) + 16 * 3 * 2 ** 27);
      r.ms = await timeIt(() => readSafetensorsHeader(f), 50);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    r.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return r;
}

export async function uiBenchmarks(): Promise<UiResult[]> {
  return [await adapterBrowser(), await heatmap(), await lossPoints(), await headerRead()];
}
