// Reading runs and adapters for the dashboard: factor pairing across naming conventions, scales,
// truth matching, snapshot contents, report data round trip.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serializeSafetensors } from '../../../src/formats/safetensors';
import { decodeFactors, decodeMatrix, jsonForHtmlScript, packMetrics, toMetricColumns, unpackMetrics } from '../../../src/protocol/webview';
import { buildReportData, loadAdapterSource, pairFactors, readAdapterFactors } from '../../../src/views/dashboardData';

const PEFT_ADAPTER = path.resolve(__dirname, '../../fixtures/peft/llama-tiny-qkvo-r8/adapter');

function tensors(map: Record<string, { shape: number[]; data: number[] }>) {
  return {
    names: Object.keys(map),
    get: (n: string) => ({ shape: map[n].shape, data: Float32Array.from(map[n].data) }),
  };
}

describe('dashboard data', () => {
  it('pairs A/B factors in PEFT, checkpoint, kohya, mlx-lm and legacy diffusers naming', () => {
    const t = tensors({
      'base_model.model.layers.0.q_proj.lora_A.weight': { shape: [1, 2], data: [1, 2] },
      'base_model.model.layers.0.q_proj.lora_B.weight': { shape: [3, 1], data: [1, 1, 1] },
      'param/linear.lora_A': { shape: [1, 2], data: [1, 2] },
      'param/linear.lora_B': { shape: [2, 1], data: [1, 1] },
      'optim/m/linear.lora_A': { shape: [1, 2], data: [0, 0] },
      'lora_unet_mid.lora_down.weight': { shape: [2, 3, 1, 1], data: [1, 0, 0, 0, 1, 0] },
      'lora_unet_mid.lora_up.weight': { shape: [4, 2, 1, 1], data: [1, 0, 0, 1, 1, 1, 0, 0] },
      'lora_unet_mid.alpha': { shape: [], data: [1] },
      'model.layers.1.v_proj.lora_a': { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
      'model.layers.1.v_proj.lora_b': { shape: [2, 5], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
      'attn1.processor.to_k_lora.down.weight': { shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] },
      'attn1.processor.to_k_lora.up.weight': { shape: [4, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] },
    });
    const pairs = pairFactors(t.names, t.get);
    const by = Object.fromEntries(pairs.map((p) => [p.module, p]));
    assert.deepEqual(Object.keys(by).sort(), ['attn1.processor.to_k', 'layers.0.q_proj', 'linear', 'lora_unet_mid', 'model.layers.1.v_proj']);
    assert.deepEqual(by['lora_unet_mid'].a.shape, [2, 3]); // conv [r, in, 1, 1] flattened
    assert.deepEqual(by['lora_unet_mid'].b.shape, [4, 2]);
    assert.equal(by['lora_unet_mid'].alpha, 1);
    // mlx-lm: lora_a [in=3, r=2] → A [2, 3]; lora_b [r=2, out=5] → B [5, 2]
    assert.deepEqual(by['model.layers.1.v_proj'].a.shape, [2, 3]);
    assert.deepEqual(Array.from(by['model.layers.1.v_proj'].a.data), [1, 3, 5, 2, 4, 6]);
    assert.deepEqual(by['model.layers.1.v_proj'].b.shape, [5, 2]);
  });

  it('rejects factors whose shapes do not fit, naming both tensors', () => {
    const t = tensors({ 'x.lora_A.weight': { shape: [2, 4], data: new Array(8).fill(0) }, 'x.lora_B.weight': { shape: [4, 3], data: new Array(12).fill(0) } });
    assert.throws(() => pairFactors(t.names, t.get), /x\.lora_B\.weight: shape \[4, 3\] does not match x\.lora_A\.weight \[2, 4\]/);
  });

  it('reads the PEFT fixture adapter: 8 modules, scale α/r = 2, spectrum from the factors', () => {
    const s = loadAdapterSource(PEFT_ADAPTER);
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
    const f = readAdapterFactors(PEFT_ADAPTER).find((x) => x.module === q.name)!;
    let fro = 0;
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++) {
        let v = 0;
        for (let m = 0; m < 8; m++) v += f.b!.data[i * 8 + m] * f.a!.data[m * 64 + j];
        fro += (2 * v) ** 2;
      }
    assert.ok(Math.abs(sp.frobeniusNorm - Math.sqrt(fro)) < 1e-4 * Math.sqrt(fro));
  });

  it('kohya file: scale = alpha / r, metadata kept verbatim, and the report data round-trips', () => {
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
    const s = loadAdapterSource(file);
    assert.equal(s.adapter?.format, 'kohya / Civitai LoRA');
    assert.equal(s.modules[0].scale, 0.5);
    assert.equal(s.adapter?.baseModel, 'sd-v1-5.ckpt');
    assert.equal(s.adapter?.metadata.find((m) => m.key === 'ss_note')?.value, '</script><script>x()</script>');
    const data = buildReportData([file]);
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
