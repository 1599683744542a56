// Reading runs and adapters for the dashboard: factor pairing across naming conventions, scales,
// truth matching, snapshot contents, report data round trip.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseSafetensors, serializeSafetensors } from '../../../src/formats/safetensors';
import { toMetricColumns } from '../../../src/shared/metricColumns';
import { decodeFactors, decodeMatrix, jsonForHtmlScript, packMetrics, unpackMetrics } from '../../../src/shared/reportEncoding';
import { buildReportData, loadAdapterSource, pairFactors, readAdapterFactors } from '../../../src/dashboard/dashboardData';

const PEFT_ADAPTER = path.resolve(__dirname, '../../fixtures/peft/llama-tiny-qkvo-r8/adapter');
const TINY_GPT2 = path.resolve(__dirname, '../../../examples/models/tiny-gpt2');

/** A safetensors file whose data section starts at an odd byte offset (no header padding), as mlx-lm writes them. */
function oddOffsetSafetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = JSON.stringify(header);
  if ((8 + json.length) % 2 === 0) json += ' ';
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  let at = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function tensors(map: Record<string, { shape: number[]; data: number[] }>) {
  return {
    names: Object.keys(map),
    shapeOf: (n: string) => map[n].shape,
    get: (n: string) => ({ shape: map[n].shape, data: Float32Array.from(map[n].data) }),
  };
}

describe('dashboard data', () => {
  it('pairs A/B factors in PEFT, checkpoint, kohya, mlx-lm and legacy diffusers naming', () => {
    // One file holds one naming convention; each is paired on its own, as the readers see them.
    const pair = (map: Record<string, { shape: number[]; data: number[] }>) => {
      const t = tensors(map);
      return Object.fromEntries(pairFactors(t.names, t.shapeOf, t.get).map((p) => [p.module, p]));
    };
    const peft = pair({
      'base_model.model.layers.0.q_proj.lora_A.weight': { shape: [1, 2], data: [1, 2] },
      'base_model.model.layers.0.q_proj.lora_B.weight': { shape: [3, 1], data: [1, 1, 1] },
    });
    assert.deepEqual(Object.keys(peft), ['layers.0.q_proj']);
    assert.deepEqual(peft['layers.0.q_proj'].a.shape, [1, 2]);
    assert.deepEqual(peft['layers.0.q_proj'].b.shape, [3, 1]);
    const checkpoint = pair({
      'param/linear.lora_A': { shape: [1, 2], data: [1, 2] },
      'param/linear.lora_B': { shape: [2, 1], data: [1, 1] },
      'optim/m/linear.lora_A': { shape: [1, 2], data: [0, 0] },
    });
    assert.deepEqual(Object.keys(checkpoint), ['linear']);
    assert.deepEqual(Array.from(checkpoint.linear.a.data), [1, 2]);
    const kohya = pair({
      'lora_unet_mid.lora_down.weight': { shape: [2, 3, 1, 1], data: [1, 0, 0, 0, 1, 0] },
      'lora_unet_mid.lora_up.weight': { shape: [4, 2, 1, 1], data: [1, 0, 0, 1, 1, 1, 0, 0] },
      'lora_unet_mid.alpha': { shape: [], data: [1] },
    });
    assert.deepEqual(Object.keys(kohya), ['lora_unet_mid']);
    assert.deepEqual(kohya['lora_unet_mid'].a.shape, [2, 3]); // conv [r, in, 1, 1] flattened
    assert.deepEqual(kohya['lora_unet_mid'].b.shape, [4, 2]);
    assert.equal(kohya['lora_unet_mid'].alpha, 1);
    const mlx = pair({
      'model.layers.1.v_proj.lora_a': { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
      'model.layers.1.v_proj.lora_b': { shape: [2, 5], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    });
    // mlx-lm: lora_a [in=3, r=2] → A [2, 3]; lora_b [r=2, out=5] → B [5, 2]
    assert.deepEqual(mlx['model.layers.1.v_proj'].a.shape, [2, 3]);
    assert.deepEqual(Array.from(mlx['model.layers.1.v_proj'].a.data), [1, 3, 5, 2, 4, 6]);
    assert.deepEqual(mlx['model.layers.1.v_proj'].b.shape, [5, 2]);
    const legacy = pair({
      'attn1.processor.to_k_lora.down.weight': { shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] },
      'attn1.processor.to_k_lora.up.weight': { shape: [4, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] },
    });
    assert.deepEqual(Object.keys(legacy), ['attn1.processor.to_k']);
    assert.deepEqual(legacy['attn1.processor.to_k'].b.shape, [4, 2]);
  });

  it('rejects factors whose shapes do not fit, naming the module and both shapes', () => {
    const t = tensors({ 'x.lora_A.weight': { shape: [2, 4], data: new Array(8).fill(0) }, 'x.lora_B.weight': { shape: [4, 3], data: new Array(12).fill(0) } });
    assert.throws(() => pairFactors(t.names, t.shapeOf, t.get), /x: lora_B \[4,3\] does not match lora_A \[2,4\] \(rank 2\)$/);
  });

  it('reads the PEFT fixture adapter: 8 modules, scale α/r = 2, spectrum from the factors', async () => {
    const s = await loadAdapterSource(PEFT_ADAPTER);
    assert.equal(s.kind, 'adapter');
    assert.equal(s.modules.length, 8);
    assert.ok(s.modules.every((m) => m.r === 8 && m.alpha === 16 && m.scale === 2));
    assert.equal(s.adapter?.format, 'Hugging Face PEFT LoRA');
    assert.match(s.adapter!.baseModelNote, /cannot run without/);
    const q = s.modules.find((m) => m.name === 'model.layers.0.self_attn.q_proj')!;
    assert.deepEqual([q.outFeatures, q.inFeatures], [64, 64]);
    const sp = s.spectra.find((x) => x.module === q.name)!.samples[0];
    assert.equal(sp.singularValues.length, 8);
    // ‖ΔW‖_F from the spectrum equals the explicit product's.
    const f = (await readAdapterFactors(PEFT_ADAPTER)).find((x) => x.module === q.name)!;
    let fro = 0;
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++) {
        let v = 0;
        for (let m = 0; m < 8; m++) v += f.b!.data[i * 8 + m] * f.a!.data[m * 64 + j];
        fro += (2 * v) ** 2;
      }
    assert.ok(Math.abs(sp.frobeniusNorm - Math.sqrt(fro)) < 1e-4 * Math.sqrt(fro));
  });

  it('reads tensor data that starts at an odd byte offset exactly, with no NaN warnings (the inspect reader)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-dash-odd-'));
    const file = path.join(dir, 'adapters.safetensors');
    // mlx-lm layout: lora_a [in=3, r=2], lora_b [r=2, out=4]; values chosen so a misaligned read is not finite.
    const a = Float32Array.from([0.5, -1.25, 2, 0.75, -0.125, 3]);
    const b = Float32Array.from([1, 2, 3, 4, -1, -2, -3, -4]);
    const bytes = oddOffsetSafetensors({ 'model.layers.0.self_attn.q_proj.lora_a': { shape: [3, 2], data: a }, 'model.layers.0.self_attn.q_proj.lora_b': { shape: [2, 4], data: b } });
    assert.equal(new DataView(bytes.buffer).getUint32(0, true) % 2, 1, 'the data section should start at an odd offset');
    fs.writeFileSync(file, bytes);
    const s = await loadAdapterSource(file);
    assert.equal(s.modules.length, 1);
    assert.deepEqual(s.adapter!.warnings.filter((w) => /NaN|Inf/.test(w)), []);
    const [f] = await readAdapterFactors(file);
    // A = lora_aᵀ [2, 3], B = lora_bᵀ [4, 2]
    assert.deepEqual(Array.from(f.a!.data), [0.5, 2, -0.125, -1.25, 0.75, 3]);
    assert.deepEqual(Array.from(f.b!.data), [1, -1, 2, -2, 3, -3, 4, -4]);
    assert.ok(s.spectra[0].samples[0].singularValues.every(Number.isFinite));
    assert.ok(s.spectra[0].samples[0].frobeniusNorm > 0);
    // A Node Buffer (what fs.readFileSync returns) decodes the same: its slice() is a view, not a copy.
    const viaBuffer = parseSafetensors(fs.readFileSync(file), file);
    assert.deepEqual(Array.from(viaBuffer.toFloat32('model.layers.0.self_attn.q_proj.lora_a')), Array.from(a));
  });

  it('GPT-2 c_attn adapter: the base config gives the [192] bias and the whole model size', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-dash-gpt2-'));
    const r = 4;
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const i of [0, 1]) {
      t[`base_model.model.transformer.h.${i}.attn.c_attn.lora_A.weight`] = { dtype: 'F32', shape: [r, 64], data: new Float32Array(r * 64).fill(0.01) };
      t[`base_model.model.transformer.h.${i}.attn.c_attn.lora_B.weight`] = { dtype: 'F32', shape: [192, r], data: new Float32Array(192 * r).fill(0.02) };
    }
    fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), serializeSafetensors(t));
    fs.writeFileSync(
      path.join(dir, 'adapter_config.json'),
      JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 8, target_modules: ['c_attn'], base_model_name_or_path: TINY_GPT2, fan_in_fan_out: true, bias: 'none' }),
    );
    const s = await loadAdapterSource(dir);
    const c = s.modules.find((m) => m.name === 'transformer.h.0.attn.c_attn')!;
    assert.deepEqual([c.outFeatures, c.inFeatures, c.hasBias], [192, 64, true]);
    // Every tensor of the base model's safetensors, counted independently from its header.
    const raw = fs.readFileSync(path.join(TINY_GPT2, 'model.safetensors'));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape?: number[] }>;
    const total = Object.entries(header).filter(([k]) => k !== '__metadata__').reduce((acc, [, v]) => acc + v.shape!.reduce((x, y) => x * y, 1), 0);
    assert.equal(s.totalParams, total);
  });

  it('kohya file: scale = alpha / r, metadata kept verbatim, and the report data round-trips', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-dash-'));
    const file = path.join(dir, 'k.safetensors');
    fs.writeFileSync(
      file,
      serializeSafetensors(
        {
          'lora_te_x.lora_down.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 0, 0, 0, 1, 0]) },
          'lora_te_x.lora_up.weight': { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
          'lora_te_x.alpha': { dtype: 'F32', shape: [], data: Float32Array.from([1]) },
        },
        { ss_sd_model_name: 'sd-v1-5.ckpt', ss_note: '</script><script>x()</script>' },
      ),
    );
    const s = await loadAdapterSource(file);
    assert.equal(s.adapter?.format, 'kohya / Civitai LoRA');
    assert.equal(s.modules[0].scale, 0.5);
    assert.equal(s.adapter?.baseModel, 'sd-v1-5.ckpt');
    assert.equal(s.adapter?.metadata.find((m) => m.key === 'ss_note')?.value, '</script><script>x()</script>');
    const data = await buildReportData([file]);
    const json = jsonForHtmlScript(data);
    assert.ok(!json.includes('</script>') && !json.includes('<'));
    const back = JSON.parse(json);
    const f = decodeFactors(back.factors[s.id]['0'][0]);
    assert.deepEqual(Array.from(f.b!.data), [1, 2, 3, 4]);
    assert.equal(f.scale, 0.5);
    assert.deepEqual(decodeMatrix({ shape: [1, 3], f32: 'AACAPwAAAEAAAEBA' }).data, Float32Array.from([1, 2, 3]));
    const cols = toMetricColumns([
      { step: 1, loss: 0.5, lr: 0.01, gradNorm: 2, elapsedMs: 10 },
      { step: 2, loss: 0.25, evalLoss: 0.3, lr: 0.01, gradNorm: 1, elapsedMs: 20 },
    ]);
    const un = unpackMetrics(packMetrics(cols));
    assert.deepEqual(un.step, [1, 2]);
    assert.deepEqual(un.evalLoss, [null, Math.fround(0.3)]);
    assert.deepEqual(un.loss, [0.5, 0.25]);
  });
});
