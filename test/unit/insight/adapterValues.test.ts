// The adapter tree's background values pass (checkAdapterValues, in steps) and `inspectAdapter` with
// values (at once) share one implementation: same alpha values, same non-finite tensors.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeBf16, encodeF16 } from '../../../src/formats/dtype';
import { inspectAdapter } from '../../../src/formats/adapters';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { checkAdapterValues, scanAdapters } from '../../../src/insight/adapterScan';

const f16 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'F16', shape, data: encodeF16(v) });
const bf16 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'BF16', shape, data: encodeBf16(v) });
const f32 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: Float32Array.from(v) });

describe('insight/adapterScan: values pass shared with inspectAdapter', () => {
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-values-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function both(name: string, tensors: Record<string, TensorToWrite>) {
    const bytes = serializeSafetensors(tensors);
    const file = path.join(tmp, name);
    fs.writeFileSync(file, bytes);
    const st = parseSafetensors(bytes, file);
    const atOnce = inspectAdapter({ path: file, weights: { name, size: bytes.length, head: bytes.subarray(0, 256), header: st.header, values: (n) => st.toFloat32(n) } });
    const [info] = await scanAdapters({ safetensors: [file], adapterConfigs: [], modelDirs: [], roots: [tmp] });
    assert.equal(info.valuesChecked, false);
    let pauses = 0;
    const changed = await checkAdapterValues(info, async () => void pauses++);
    return { atOnce, info, changed, pauses, tensors: st.header.tensors.length };
  }

  it('reports the same non-finite F16/BF16 tensors and 0-d F16 alphas through both, pausing after each tensor', async () => {
    const { atOnce, info, changed, pauses, tensors } = await both('nan_lora.safetensors', {
      'lora_unet_a_proj.lora_down.weight': f16([2, 3], [1, NaN, 2, 0, 0, 3]),
      'lora_unet_a_proj.lora_up.weight': bf16([4, 2], [Infinity, 1, 2, 0, NaN, 0, 1, 1]),
      'lora_unet_a_proj.alpha': f16([], [1]),
      'lora_unet_b_proj.lora_down.weight': f32([2, 3], [1, 2, 3, 4, 5, 6]),
      'lora_unet_b_proj.lora_up.weight': bf16([4, 2], [0.5, 1, 2, 3, 4, 5, 6, 7]),
      'lora_unet_b_proj.alpha': f16([], [4]),
    });
    assert.equal(atOnce.format, 'kohya');
    assert.equal(pauses, tensors, 'one pause after each tensor');
    assert.equal(changed, true);
    assert.equal(info.valuesChecked, true);
    // Alpha from the 0-d F16 tensors: scale = alpha / r.
    const alphas = (ms: { name: string; alpha?: number; scale: number }[]) => ms.map((m) => [m.name, m.alpha, m.scale]);
    assert.deepEqual(alphas(info.modules), alphas(atOnce.modules));
    assert.deepEqual(alphas(info.modules), [['lora_unet_a_proj', 1, 0.5], ['lora_unet_b_proj', 4, 2]]);
    // The same two tensors: one line each from inspectAdapter, one summary line in the tree.
    const perTensor = atOnce.warnings.filter((w) => /value\(s\)$/.test(w));
    assert.deepEqual(perTensor, ['tensor "lora_unet_a_proj.lora_down.weight" has 1 NaN value(s)', 'tensor "lora_unet_a_proj.lora_up.weight" has 1 NaN and 1 Inf value(s)']);
    assert.deepEqual(info.warnings.filter((w) => /NaN|Inf/.test(w)), ['NaN/Inf values in 2 tensors: lora_unet_a_proj.lora_down.weight, lora_unet_a_proj.lora_up.weight']);
    // The host computes no ΔW norms (the dashboard does, off the host); inspectAdapter with values does.
    assert.ok(info.modules.every((m) => m.deltaNorm === undefined));
    assert.ok(atOnce.modules.every((m) => m.deltaNorm !== undefined));
  });

  it('a NaN alpha gets its own line in the tree besides the summary, as before', async () => {
    const { atOnce, info } = await both('nan_alpha_lora.safetensors', {
      'lora_unet_a_proj.lora_down.weight': f32([2, 3], [1, 2, 3, 4, 5, 6]),
      'lora_unet_a_proj.lora_up.weight': f32([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
      'lora_unet_a_proj.alpha': f16([], [NaN]),
    });
    assert.deepEqual(atOnce.warnings.filter((w) => /NaN|Inf/.test(w)), ['tensor "lora_unet_a_proj.alpha" has 1 NaN value(s)']);
    assert.deepEqual(info.warnings.filter((w) => /NaN|Inf/.test(w)), ['tensor "lora_unet_a_proj.alpha" has 1 NaN value(s)', 'NaN/Inf values in 1 tensor: lora_unet_a_proj.alpha']);
  });

  it('a clean file: no NaN/Inf warning from either', async () => {
    const { atOnce, info, pauses, tensors } = await both('clean_lora.safetensors', {
      'lora_unet_a_proj.lora_down.weight': bf16([2, 3], [1, 2, 3, 4, 5, 6]),
      'lora_unet_a_proj.lora_up.weight': f16([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
      'lora_unet_a_proj.alpha': f16([], [2]),
    });
    assert.equal(pauses, tensors);
    assert.ok(!atOnce.warnings.some((w) => /NaN|Inf/.test(w)), atOnce.warnings.join('; '));
    assert.ok(!info.warnings.some((w) => /NaN|Inf/.test(w)), info.warnings.join('; '));
    assert.equal(info.modules[0].alpha, 2);
  });
});
