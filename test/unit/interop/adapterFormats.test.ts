// Adapter formats other than PEFT: detection, modules (rank, alpha, scale), ΔW maths, and the
// inspectAdapter report's warnings, on small files built here with known values.
import * as assert from 'node:assert/strict';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { encodeF16 } from '../../../src/formats/dtype';
import { describeLayout, detectFormat, naturalCompare } from '../../../src/formats/adapters/adapterFormats';
import { deltaW, kron, matmul } from '../../../src/formats/adapters/deltaW';
import { inspectAdapter, type InspectFileInput } from '../../../src/formats/adapters/inspect';
import { maxAbsDiff } from './helpers';

const seq = (n: number, k = 0.1, o = 0) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + o) * k + (i % 3) * 0.01);
const f32 = (shape: number[], data = seq(shape.reduce((a, b) => a * b, 1))): TensorToWrite => ({ dtype: 'F32', shape, data });
const f16scalar = (v: number): TensorToWrite => ({ dtype: 'F16', shape: [], data: encodeF16([v]) });

function fileInput(name: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>, readValues = true): InspectFileInput {
  const bytes = serializeSafetensors(tensors, metadata);
  const st = parseSafetensors(bytes, name);
  return { name, size: bytes.length, head: bytes.subarray(0, 64), header: st.header, values: readValues ? (n) => (st.has(n) ? st.toFloat32(n) : undefined) : undefined };
}

function deltaOf(report: ReturnType<typeof inspectAdapter>, input: InspectFileInput, module: string) {
  const m = report.modules.find((x) => x.name === module);
  assert.ok(m, `module ${module} in ${report.modules.map((x) => x.name).join(', ')}`);
  return { m, d: deltaW(report.format as never, m, (n) => input.values!(n)!) };
}

describe('interop: adapter formats', () => {
  it('kohya linear: scale = alpha/r from a 0-d F16 alpha; alpha 0 or missing means alpha = r', () => {
    const down = seq(2 * 3); // [r=2, in=3]
    const up = seq(4 * 2, 0.2, 1); // [out=4, r=2]
    const input = fileInput('k.safetensors', {
      'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight': f32([2, 3], down),
      'lora_unet_mid_block_attentions_0_proj_in.lora_up.weight': f32([4, 2], up),
      'lora_unet_mid_block_attentions_0_proj_in.alpha': f16scalar(1),
      'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': f32([2, 3]),
      'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight': f32([4, 2]),
      'lora_te_text_model_encoder_layers_0_mlp_fc1.alpha': f16scalar(0),
      'lora_te1_text_model_encoder_layers_0_mlp_fc2.lora_down.weight': f32([2, 3]),
      'lora_te1_text_model_encoder_layers_0_mlp_fc2.lora_up.weight': f32([4, 2]),
    }, { ss_network_args: '{"conv_dim": "4"}', ss_sd_model_name: 'v1-5.safetensors', 'modelspec.architecture': 'stable-diffusion-v1/lora' });
    const r = inspectAdapter({ path: 'k.safetensors', weights: input });
    assert.equal(r.format, 'kohya');
    assert.equal(r.modules.length, 3);
    const { m, d } = deltaOf(r, input, 'lora_unet_mid_block_attentions_0_proj_in');
    assert.equal(m.alpha, 1);
    assert.equal(m.alphaSource, 'tensor');
    assert.equal(m.scale, 0.5);
    assert.deepEqual(d.shape, [4, 3]);
    const expected = matmul(up, down, 4, 2, 3).map((v) => v * 0.5);
    assert.ok(maxAbsDiff(d.data, expected) < 1e-7);
    const zero = r.modules.find((x) => x.name.endsWith('layers_0_mlp_fc1'))!;
    assert.equal(zero.scale, 1);
    assert.equal(zero.alphaSource, 'rank');
    assert.equal(r.modules.find((x) => x.name.startsWith('lora_te1_'))!.scale, 1);
    assert.deepEqual(r.metadataJson.ss_network_args, { conv_dim: '4' });
    assert.equal(r.baseModel, 'stable-diffusion-v1/lora');
    assert.match(r.baseModelStatement, /cannot run without it/);
    assert.equal(r.totals.params, 3 * (6 + 8));
  });

  it('kohya conv (down [r, in, kh, kw], up [out, r, 1, 1]) and LoCon lora_mid give the right ΔW', () => {
    const r = 2, inF = 3, out = 4, k = 3;
    const down = seq(r * inF * k * k);
    const up = seq(out * r, 0.3, 2);
    const input = fileInput('c.safetensors', {
      'lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight': f32([r, inF, k, k], down),
      'lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight': f32([out, r, 1, 1], up),
      'lora_unet_down_blocks_0_resnets_0_conv2.lora_down.weight': f32([r, inF, 1, 1], seq(r * inF, 0.2, 3)),
      'lora_unet_down_blocks_0_resnets_0_conv2.lora_mid.weight': f32([r, r, k, k], seq(r * r * k * k, 0.2, 4)),
      'lora_unet_down_blocks_0_resnets_0_conv2.lora_up.weight': f32([out, r, 1, 1], seq(out * r, 0.2, 5)),
    });
    const rep = inspectAdapter({ path: 'c', weights: input });
    assert.equal(rep.format, 'lycoris'); // lora_mid is LyCORIS' LoCon
    const conv = deltaOf(rep, input, 'lora_unet_down_blocks_0_resnets_0_conv1');
    assert.deepEqual(conv.d.shape, [out, inF, k, k]);
    assert.ok(maxAbsDiff(conv.d.data, matmul(up, down, out, r, inF * k * k)) < 1e-7);
    const locon = deltaOf(rep, input, 'lora_unet_down_blocks_0_resnets_0_conv2');
    assert.equal(locon.m.kind, 'locon');
    assert.deepEqual(locon.d.shape, [out, inF, k, k]);
    // naive ΔW[o, i, y, x] = Σ_a Σ_b up[o, a] mid[a, b, y, x] down[b, i]
    const U = input.values!('lora_unet_down_blocks_0_resnets_0_conv2.lora_up.weight')!;
    const M = input.values!('lora_unet_down_blocks_0_resnets_0_conv2.lora_mid.weight')!;
    const D = input.values!('lora_unet_down_blocks_0_resnets_0_conv2.lora_down.weight')!;
    const naive = new Float32Array(out * inF * k * k);
    for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) for (let p = 0; p < k * k; p++) {
      let s = 0;
      for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) s += U[o * r + a] * M[(a * r + b) * k * k + p] * D[b * inF + i];
      naive[(o * inF + i) * k * k + p] = s;
    }
    assert.ok(maxAbsDiff(locon.d.data, naive) < 1e-6);
    const fro = (x: Float32Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));
    assert.ok(Math.abs(conv.m.deltaNorm! - fro(conv.d.data)) < 1e-6, 'Gram-matrix norm of a conv LoRA');
    assert.ok(Math.abs(locon.m.deltaNorm! - fro(locon.d.data)) < 1e-6);
  });

  it('LoHa is a Hadamard product and LoKr a Kronecker product, scaled by alpha / r', () => {
    const input = fileInput('l.safetensors', {
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w1_a': f32([4, 2]),
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w1_b': f32([2, 3], seq(6, 0.1, 1)),
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w2_a': f32([4, 2], seq(8, 0.1, 2)),
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w2_b': f32([2, 3], seq(6, 0.1, 3)),
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha': f16scalar(1),
      'lora_te_text_model_encoder_layers_0_self_attn_k_proj.lokr_w1': f32([2, 3]),
      'lora_te_text_model_encoder_layers_0_self_attn_k_proj.lokr_w2_a': f32([3, 2], seq(6, 0.1, 4)),
      'lora_te_text_model_encoder_layers_0_self_attn_k_proj.lokr_w2_b': f32([2, 4], seq(8, 0.1, 5)),
      'lora_te_text_model_encoder_layers_0_self_attn_k_proj.alpha': f16scalar(4),
    });
    const rep = inspectAdapter({ path: 'l', weights: input });
    assert.equal(rep.format, 'lycoris');
    const v = (n: string) => input.values!(`lora_te_text_model_encoder_layers_0_self_attn_${n}`)!;
    const loha = deltaOf(rep, input, 'lora_te_text_model_encoder_layers_0_self_attn_q_proj');
    assert.equal(loha.m.kind, 'loha');
    assert.equal(loha.m.scale, 0.5);
    const p1 = matmul(v('q_proj.hada_w1_a'), v('q_proj.hada_w1_b'), 4, 2, 3);
    const p2 = matmul(v('q_proj.hada_w2_a'), v('q_proj.hada_w2_b'), 4, 2, 3);
    assert.ok(maxAbsDiff(loha.d.data, p1.map((x, i) => x * p2[i] * 0.5)) < 1e-7);
    const lokr = deltaOf(rep, input, 'lora_te_text_model_encoder_layers_0_self_attn_k_proj');
    assert.equal(lokr.m.kind, 'lokr');
    assert.deepEqual(lokr.d.shape, [6, 12]);
    assert.equal(lokr.m.scale, 2); // alpha 4 / r 2
    const w2 = matmul(v('k_proj.lokr_w2_a'), v('k_proj.lokr_w2_b'), 3, 2, 4);
    const k = kron(v('k_proj.lokr_w1'), [2, 3], w2, [3, 4]);
    assert.ok(Math.abs(k[0 * 12 + 5] - v('k_proj.lokr_w1')[1] * w2[1]) < 1e-9); // row 0 = (i=0,p=0), col 5 = (j=1,q=1)
    assert.ok(maxAbsDiff(lokr.d.data, k.map((x) => x * 2)) < 1e-7);
    // ‖ΔW‖_F in the report: Kronecker shortcut for LoKr, full product for LoHa
    const fro = (x: Float32Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));
    assert.ok(Math.abs(lokr.m.deltaNorm! - fro(lokr.d.data)) < 1e-6);
    assert.ok(Math.abs(loha.m.deltaNorm! - fro(loha.d.data)) < 1e-7);
  });

  it('LyCORIS Tucker factors: LoHa hada_t1/t2 and LoKr lokr_t2 (conv) equal a naive einsum', () => {
    /** Naive einsum over explicit index loops: spec like "ijkl,jr,ip->prkl" (one letter per axis). */
    const einsum = (spec: string, ...ops: [Float32Array, number[]][]): Float32Array => {
      const [ins, out] = spec.split('->');
      const terms = ins.split(',');
      const size: Record<string, number> = {};
      terms.forEach((t, n) => [...t].forEach((c, d) => (size[c] = ops[n][1][d])));
      const letters = Object.keys(size);
      const res = new Float32Array([...out].reduce((a, c) => a * size[c], 1));
      const idx: Record<string, number> = {};
      const flat = (t: string, shape: number[]) => [...t].reduce((a, c, d) => a * shape[d] + idx[c], 0);
      const loop = (l: number) => {
        if (l === letters.length) {
          let v = 1;
          terms.forEach((t, n) => (v *= ops[n][0][flat(t, ops[n][1])]));
          res[flat(out, [...out].map((c) => size[c]))] += v;
          return;
        }
        for (idx[letters[l]] = 0; idx[letters[l]] < size[letters[l]]; idx[letters[l]]++) loop(l + 1);
      };
      loop(0);
      return res;
    };
    const P = 'lora_unet_down_blocks_0_resnets_0_conv1';
    const Q = 'lora_unet_down_blocks_0_resnets_0_conv2';
    const input = fileInput('t.safetensors', {
      // LoHa CP on a 3x3 conv, out 4, in 3, r 2: w?_a [r, out], w?_b [r, in], t? [r, r, 3, 3]
      [`${P}.hada_w1_a`]: f32([2, 4], seq(8, 0.5, 0)),
      [`${P}.hada_w1_b`]: f32([2, 3], seq(6, 0.5, 1)),
      [`${P}.hada_t1`]: f32([2, 2, 3, 3], seq(36, 0.3, 2)),
      [`${P}.hada_w2_a`]: f32([2, 4], seq(8, 0.5, 3)),
      [`${P}.hada_w2_b`]: f32([2, 3], seq(6, 0.5, 4)),
      [`${P}.hada_t2`]: f32([2, 2, 3, 3], seq(36, 0.3, 5)),
      [`${P}.alpha`]: f16scalar(1),
      // LoKr: full w1 [2, 2], Tucker w2: t2 [r, r, 3, 3], w2_a [r, out_k 3], w2_b [r, in_n 5] -> ΔW [6, 10, 3, 3]
      [`${Q}.lokr_w1`]: f32([2, 2], seq(4, 0.5, 6)),
      [`${Q}.lokr_t2`]: f32([2, 2, 3, 3], seq(36, 0.3, 7)),
      [`${Q}.lokr_w2_a`]: f32([2, 3], seq(6, 0.2, 8)),
      [`${Q}.lokr_w2_b`]: f32([2, 5], seq(10, 0.2, 9)),
      [`${Q}.alpha`]: f16scalar(4),
    });
    const rep = inspectAdapter({ path: 't', weights: input });
    assert.equal(rep.format, 'lycoris');
    assert.deepEqual(rep.warnings, []);
    const v = (n: string) => input.values!(n)!;
    const T = (n: string, shape: number[]): [Float32Array, number[]] => [v(n), shape];
    const fro = (x: Float32Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));

    const loha = deltaOf(rep, input, P);
    assert.deepEqual([loha.m.kind, loha.m.rank, loha.m.scale, loha.m.paramCount], ['loha', 2, 0.5, 2 * (8 + 6 + 36)]);
    assert.deepEqual(loha.m.deltaShape, [4, 3, 3, 3]);
    assert.deepEqual(loha.d.shape, [4, 3, 3, 3]);
    const r1 = einsum('ijkl,jr,ip->prkl', T(`${P}.hada_t1`, [2, 2, 3, 3]), T(`${P}.hada_w1_b`, [2, 3]), T(`${P}.hada_w1_a`, [2, 4]));
    const r2 = einsum('ijkl,jr,ip->prkl', T(`${P}.hada_t2`, [2, 2, 3, 3]), T(`${P}.hada_w2_b`, [2, 3]), T(`${P}.hada_w2_a`, [2, 4]));
    const wantLoha = r1.map((x, i) => x * r2[i] * 0.5);
    assert.ok(fro(wantLoha) > 0.01, `‖ΔW‖ ${fro(wantLoha)}`);
    assert.ok(maxAbsDiff(loha.d.data, wantLoha) < 1e-6, `LoHa CP max |Δ| ${maxAbsDiff(loha.d.data, wantLoha)}`);
    assert.ok(Math.abs(loha.m.deltaNorm! - fro(wantLoha)) < 1e-6);

    const lokr = deltaOf(rep, input, Q);
    assert.deepEqual([lokr.m.kind, lokr.m.rank, lokr.m.scale], ['lokr', 2, 2]); // alpha 4 / r 2 (w2 decomposed)
    assert.deepEqual(lokr.m.deltaShape, [6, 10, 3, 3]);
    const w2 = einsum('ijkl,ip,jr->prkl', T(`${Q}.lokr_t2`, [2, 2, 3, 3]), T(`${Q}.lokr_w2_a`, [2, 3]), T(`${Q}.lokr_w2_b`, [2, 5])); // [3, 5, 3, 3]
    // kron(w1[..., None, None], w2): ΔW[a·3 + p, b·5 + q, k, l] = w1[a, b]·w2[p, q, k, l]
    const w1 = v(`${Q}.lokr_w1`);
    const wantLokr = new Float32Array(6 * 10 * 9);
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < 2; b++)
        for (let p = 0; p < 3; p++)
          for (let q = 0; q < 5; q++)
            for (let k = 0; k < 9; k++) wantLokr[((a * 3 + p) * 10 + b * 5 + q) * 9 + k] = 2 * w1[a * 2 + b] * w2[(p * 5 + q) * 9 + k];
    assert.ok(fro(wantLokr) > 0.01, `‖ΔW‖ ${fro(wantLokr)}`);
    assert.ok(maxAbsDiff(lokr.d.data, wantLokr) < 1e-6, `LoKr Tucker max |Δ| ${maxAbsDiff(lokr.d.data, wantLokr)}`);
    assert.ok(Math.abs(lokr.m.deltaNorm! - fro(wantLokr)) < 1e-5);
  });

  it('mlx-lm: lora_a [in, r], lora_b [r, out], absolute scale from adapter_config.json', () => {
    const a = seq(3 * 2);
    const b = seq(2 * 4, 0.1, 1);
    const input = fileInput('adapters.safetensors', {
      'model.layers.0.self_attn.q_proj.lora_a': f32([3, 2], a),
      'model.layers.0.self_attn.q_proj.lora_b': f32([2, 4], b),
    });
    const cfg = JSON.stringify({ lora_parameters: { rank: 2, alpha: 16, scale: 10 }, model: '/Users/someone/model' });
    const rep = inspectAdapter({ path: 'mlx', weights: input, configText: cfg });
    assert.equal(rep.format, 'mlx');
    const { m, d } = deltaOf(rep, input, 'model.layers.0.self_attn.q_proj');
    assert.equal(m.scale, 10);
    assert.deepEqual(d.shape, [4, 3]);
    const ab = matmul(a, b, 3, 2, 4); // [in, out]
    const expected = new Float32Array(12);
    for (let o = 0; o < 4; o++) for (let i = 0; i < 3; i++) expected[o * 3 + i] = 10 * ab[i * 4 + o];
    assert.ok(maxAbsDiff(d.data, expected) < 1e-7);
    assert.ok(rep.warnings.some((w) => /no "peft_type"|mlx-lm config/.test(w)));
    assert.ok(rep.warnings.some((w) => /absolute scale 10.*alpha \/ rank = 8/.test(w)));
  });

  it('detects loralib, legacy diffusers, cloneofsimo, diffusers-PEFT keys, unknown LoRA and non-adapters', () => {
    assert.equal(detectFormat(['transformer.h.0.attn.c_attn.lora_A', 'transformer.h.0.attn.c_attn.lora_B']), 'loralib');
    assert.equal(detectFormat(['down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight']), 'diffusers-legacy');
    assert.equal(detectFormat(['text_encoder:0:down', 'text_encoder:0:up']), 'cloneofsimo');
    assert.equal(detectFormat(['transformer.single_transformer_blocks.0.proj_out.lora_A.weight']), 'diffusers-peft');
    assert.equal(detectFormat(['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']), 'peft');
    assert.equal(detectFormat(['w_a_000', 'w_b_000']), 'unknown-lora');
    assert.equal(detectFormat(['weights', 'bias', 'embeddings']), 'not-an-adapter');
    const lay = describeLayout({
      tensors: [
        { name: 'unet:3:down', dtype: 'F16', shape: [4, 320] },
        { name: 'unet:3:up', dtype: 'F16', shape: [320, 4] },
        { name: '<s1>', dtype: 'F32', shape: [768] },
      ],
      metadata: { 'unet:3:rank': '4', '<s1>': '<embed>' },
    });
    assert.equal(lay.modules[0].rank, 4);
    assert.deepEqual(lay.modules[0].deltaShape, [320, 320]);
    assert.ok(lay.warnings.some((w) => /textual-inversion.*<s1>/.test(w)));
  });

  it('a factor without its partner, or factors of different rank, is a warning and not a module', () => {
    const t = (name: string, shape: number[]) => ({ name, dtype: 'F32', shape });
    const cases: [string, { name: string; dtype: string; shape: number[] }[], RegExp][] = [
      ['loralib', [t('h.0.attn.c_attn.lora_A', [2, 8]), t('h.1.attn.c_attn.lora_A', [2, 8]), t('h.1.attn.c_attn.lora_B', [24, 2])], /h\.0\.attn\.c_attn: has lora_A but no lora_B; not counted/],
      ['diffusers-legacy', [t('attn1.processor.to_q_lora.down.weight', [4, 320]), t('attn1.processor.to_q_lora.up.weight', [320, 2])], /to_q_lora: up \[320,2\] does not match down \[4,320\] \(rank 4\)/],
      ['peft', [t('base_model.model.q_proj.lora_A.weight', [4, 8]), t('base_model.model.q_proj.lora_B.weight', [8, 2])], /q_proj: lora_B \[8,2\] does not match lora_A \[4,8\]/],
      ['kohya', [t('lora_unet_x_proj_in.lora_down.weight', [4, 8]), t('lora_unet_x_proj_in.lora_up.weight', [8, 3])], /lora_unet_x_proj_in: lora_up \[8,3\] does not match lora_down/],
      ['mlx', [t('layers.0.q_proj.lora_a', [8, 4]), t('layers.0.q_proj.lora_b', [2, 8])], /q_proj: lora_b \[2,8\] does not match lora_a \[8,4\] \(rank 4\)/],
      ['cloneofsimo', [t('unet:0:down', [4, 320])], /unet:0: has down but no up/],
    ];
    for (const [format, tensors, warning] of cases) {
      const lay = describeLayout({ tensors, metadata: {}, otherConfig: format === 'mlx' ? { lora_parameters: { scale: 2 } } : undefined });
      assert.equal(lay.format, format);
      assert.ok(lay.warnings.some((w) => warning.test(w)), `${format}: ${lay.warnings.join(' | ')}`);
      const broken = tensors.filter((x) => !lay.modules.some((m) => Object.values(m.tensors).includes(x)));
      assert.deepEqual(lay.extras.map((x) => x.name).sort(), broken.map((x) => x.name).sort(), `${format}: the unpaired tensors are listed as other tensors`);
      assert.ok(broken.length > 0);
    }
  });

  it('a broken adapter_config.json is an error (PEFT cannot load it); the weights are still described', () => {
    const input = fileInput('adapter_model.safetensors', {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': f32([4, 8]),
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': f32([8, 4]),
    });
    const cases: [string, RegExp][] = [
      ['{"r": 8', /^adapter_config\.json: not valid JSON \(/],
      ['[1, 2]', /^adapter_config\.json: expected a JSON object, got an array$/],
      ['{"peft_type": "LORA", "r": "8"}', /^adapter_config\.json: "r" should be a positive integer, got "8"$/],
    ];
    for (const [text, error] of cases) {
      const rep = inspectAdapter({ path: 'a', weights: input, configText: text, configName: 'adapter_config.json' });
      assert.equal(rep.errors.length, 1, text);
      assert.match(rep.errors[0], error);
      assert.equal(rep.format, 'peft');
      assert.equal(rep.modules.length, 1);
      assert.ok(!rep.warnings.some((w) => /no adapter_config\.json/.test(w)), rep.warnings.join(' | '));
    }
  });

  it('lists modules in layer order (h.2 before h.10)', () => {
    const names = ['10', '2', '1', '0'].flatMap((i) => [`base_model.model.transformer.h.${i}.attn.c_attn.lora_A.weight`, `base_model.model.transformer.h.${i}.attn.c_attn.lora_B.weight`]);
    const lay = describeLayout({ tensors: names.map((name) => ({ name, dtype: 'F32', shape: name.includes('lora_A') ? [2, 8] : [24, 2] })), metadata: {} });
    assert.deepEqual(lay.modules.map((m) => m.name.split('.')[2]), ['0', '1', '2', '10']);
    assert.deepEqual(['a.10', 'a.9b', 'a.9', 'b', 'a'].sort(naturalCompare), ['a', 'a.9', 'a.9b', 'a.10', 'b']);
  });

  it('PEFT: flags a config that does not match the weights', () => {
    const input = fileInput('adapter_model.safetensors', {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': f32([4, 8]),
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': f32([8, 4]),
    });
    const cfg = JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], use_dora: true, brand_new_field: 1 });
    const rep = inspectAdapter({ path: 'a', weights: input, configText: cfg, configName: 'adapter_config.json' });
    assert.equal(rep.format, 'peft');
    assert.equal(rep.modules[0].scale, 16 / 4);
    const w = rep.warnings.join('\n');
    assert.match(w, /gives r = 8 for model\.layers\.0\.self_attn\.q_proj, but its lora_A has rank 4/);
    assert.match(w, /target_modules \["v_proj"\] match no LoRA tensors/);
    assert.match(w, /use_dora but the weights have no lora_magnitude_vector/);
    assert.match(w, /unknown field "brand_new_field" ignored/);
  });

  it('reports LFS pointers, pickles (never opened), NaN/Inf, empty tensors; keeps hostile metadata as text', () => {
    const lfs = new TextEncoder().encode('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 16822989\n');
    const r1 = inspectAdapter({ path: 'x', weights: { name: 'adapter_model.safetensors', size: lfs.length, head: lfs.subarray(0, 64) } });
    assert.equal(r1.format, 'unreadable');
    assert.match(r1.errors[0], /Git LFS pointer.*git lfs pull/);
    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0]);
    const r2 = inspectAdapter({ path: 'y', siblings: [{ name: 'adapter_model.bin', size: 1000, head: zip }] });
    assert.match(r2.errors.join('\n'), /adapter_model\.bin is a PyTorch pickle: refused, never unpickled/);
    const bad = new Float32Array([1, NaN, Infinity, 2, 0, 0]);
    const input = fileInput('n.safetensors', {
      'base_model.model.fc.lora_A.weight': f32([2, 3], bad),
      'base_model.model.fc.lora_B.weight': f32([3, 2]),
      'base_model.model.fc.empty': f32([2, 0], new Float32Array(0)),
    }, { html: '<script>alert(1)</script>' });
    const r3 = inspectAdapter({ path: 'n', weights: input });
    const w = r3.warnings.join('\n');
    assert.match(w, /"base_model\.model\.fc\.lora_A\.weight" has 1 NaN and 1 Inf value/);
    assert.match(w, /"base_model\.model\.fc\.empty" is empty/);
    assert.equal(r3.metadata.html, '<script>alert(1)</script>');
    assert.match(r3.baseModelStatement, /cannot run without it/);
  });

  it('header-only: kohya alpha falls back to ss_network_alpha, marked as metadata', () => {
    const input = fileInput('h.safetensors', {
      'lora_unet_x_proj.lora_down.weight': f32([4, 3]),
      'lora_unet_x_proj.lora_up.weight': f32([3, 4]),
      'lora_unet_x_proj.alpha': f16scalar(2),
    }, { ss_network_alpha: '2.0' }, false);
    const rep = inspectAdapter({ path: 'h', weights: input });
    assert.equal(rep.modules[0].alphaSource, 'metadata');
    assert.equal(rep.modules[0].scale, 0.5);
    assert.equal(rep.valuesChecked, false);
  });
});
