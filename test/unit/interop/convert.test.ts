// `lora-lab convert`: the GGUF writer/reader, llama.cpp's rope row order, the mlx-lm export read back
// by LoRA Lab's own mlx reader to the same ΔW, the command as a user runs it, and the refusals.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GGML_TYPE, parseGguf, serializeGguf, gguf, type GgufTensor } from '../../../src/formats/gguf/gguf';
import { permuteRopeRows, unpermuteRopeRows, ggufTensorName } from '../../../src/formats/gguf/llamaCppNames';
import { loraToGguf, type LoraFactors } from '../../../src/formats/gguf/loraToGguf';
import { modelToGguf } from '../../../src/formats/gguf/modelToGguf';
import { loraToMlx } from '../../../src/formats/adapters/mlxWriter';
import { describeLayout } from '../../../src/formats/adapters/adapterFormats';
import { deltaW, matmul } from '../../../src/formats/adapters/deltaW';
import { parseSafetensors, serializeSafetensors } from '../../../src/formats/safetensors';
import { hfConfigFromJson } from '../../../src/formats/hfConfig';
import { weightsFromRecord } from '../../../src/models/weights';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { PEFT_FIXTURES, REAL_WORLD } from './helpers';
import { llamaModules, rng, writeAdapter, writeTinyLlama } from './tinyCheckpoints';

const ROOT = path.resolve(__dirname, '../../..');

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const LLAMA_CFG = hfConfigFromJson({ model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_attention_heads: 2, num_key_value_heads: 1, num_hidden_layers: 2, vocab_size: 300 });

function factors(ranks: number[], scales: number[], seed = 3): LoraFactors[] {
  const r = rng(seed);
  return ranks.map((rank, i) => ({
    path: `model.layers.${i}.self_attn.q_proj`,
    rank,
    scale: scales[i],
    A: { shape: [rank, 16], data: r(rank * 16, 0.3) },
    B: { shape: [16, rank], data: r(16 * rank, 0.3) },
  }));
}

/** s·B·A, [out, in]. */
function reference(f: LoraFactors): Float32Array {
  return matmul(f.B.data, f.A.data, f.B.shape[0], f.rank, f.A.shape[1]).map((v) => v * f.scale);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('convert: GGUF and mlx-lm export', function () {
  this.timeout(60000);
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-convert-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('GGUF: what is written reads back (metadata types, F32/F16/BF16 tensors, ne reversed, 32-byte aligned data)', () => {
    const vals = Float32Array.from({ length: 6 }, (_, i) => i * 0.375 - 1);
    const tensors: GgufTensor[] = [
      { name: 'a.weight', type: 'F32', shape: [2, 3], data: vals },
      { name: 'b.weight', type: 'F16', shape: [3, 2], data: vals },
      { name: 'c', type: 'BF16', shape: [6], data: vals },
    ];
    const metadata = new Map([
      ['general.architecture', gguf.str('llama')],
      ['x.f', gguf.f32(0.5)],
      ['x.u', gguf.u32(7)],
      ['x.b', gguf.bool(true)],
      ['x.s', gguf.strings(['a', 'b c'])],
      ['x.i', gguf.i32s([1, -2])],
    ]);
    const chunks = serializeGguf({ metadata, tensors });
    assert.equal(chunks[0].length % 32, 0, 'the data section starts aligned');
    const bytes = Buffer.concat(chunks);
    const g = parseGguf(bytes);
    assert.equal(g.version, 3);
    assert.deepEqual([...g.metadata], [['general.architecture', 'llama'], ['x.f', 0.5], ['x.u', 7], ['x.b', true], ['x.s', ['a', 'b c']], ['x.i', [1, -2]]]);
    assert.deepEqual(g.tensors.get('a.weight')!.shape, [2, 3]);
    assert.deepEqual([...g.tensors.get('a.weight')!.values], [...vals]);
    assert.deepEqual([...g.tensors.get('b.weight')!.values], [...vals], 'these values are exact in F16');
    assert.deepEqual([...g.tensors.get('c')!.values], [...vals], 'and in BF16');
    // ne[0] is the fastest dimension: [2, 3] is stored as ne = [3, 2].
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const nameAt = bytes.indexOf(Buffer.from('a.weight'));
    assert.equal(dv.getUint32(nameAt + 8, true), 2);
    assert.equal(Number(dv.getBigUint64(nameAt + 12, true)), 3);
    assert.equal(dv.getUint32(nameAt + 28, true), GGML_TYPE.F32);
    assert.throws(() => serializeGguf({ metadata, tensors: [tensors[0], tensors[0]] }), /appears twice/);
    assert.throws(() => serializeGguf({ metadata, tensors: [{ ...tensors[0], shape: [7] }] }), /holds 7 values, got 6/);
    assert.throws(() => parseGguf(bytes.subarray(0, 40)), /ends early/);
  });

  it("llama.cpp's rope order: row t·hd/2 + j of each head moves to 2j + t, and back", () => {
    const rows = 8; // 2 heads of 4
    const data = Float32Array.from({ length: rows * 2 }, (_, i) => i);
    const p = permuteRopeRows(data, rows, 2, 2);
    // head 0: HF rows [0 1 | 2 3] -> [0 2 1 3]
    assert.deepEqual([...p.slice(0, 8)], [0, 1, 4, 5, 2, 3, 6, 7]);
    assert.deepEqual([...unpermuteRopeRows(p, rows, 2, 2)], [...data]);
    assert.deepEqual(ggufTensorName('gpt2', 'transformer.h.3.mlp.c_fc.weight'), { name: 'blk.3.ffn_up.weight', transpose: true });
    assert.deepEqual(ggufTensorName('llama', 'model.layers.1.self_attn.o_proj.weight'), { name: 'blk.1.attn_output.weight', transpose: false });
  });

  it('GGUF adapter: one adapter.lora.alpha; per-module scales folded into lora_b; the reported error is the written one', () => {
    const f = factors([4, 8], [0.5, 2 / Math.sqrt(8)]);
    const { file, modules, alpha } = loraToGguf('llama', LLAMA_CFG, f, { type: 'F32' });
    assert.equal(alpha, Math.fround(0.5 * 4));
    const g = parseGguf(Buffer.concat(serializeGguf(file)));
    assert.equal(g.metadata.get('general.type'), 'adapter');
    assert.equal(g.metadata.get('adapter.type'), 'lora');
    assert.equal(g.metadata.get('adapter.lora.alpha'), alpha);
    for (const [i, m] of f.entries()) {
      const a = g.tensors.get(`blk.${i}.attn_q.weight.lora_a`)!;
      const b = g.tensors.get(`blk.${i}.attn_q.weight.lora_b`)!;
      assert.deepEqual(a.shape, [m.rank, 16]);
      assert.deepEqual(b.shape, [16, m.rank]);
      // As llama.cpp applies it: (alpha / r)·B·A with B back in Hugging Face row order (2 heads of 8).
      const B = unpermuteRopeRows(b.values, 16, m.rank, 2);
      const got = matmul(B, a.values, 16, m.rank, 16).map((v) => v * (alpha / m.rank));
      assert.ok(maxAbs(got, reference(m)) < 1e-6, `module ${i}: ${maxAbs(got, reference(m))}`);
      assert.ok(modules[i].relError < 1e-6);
    }
    const f16 = loraToGguf('llama', LLAMA_CFG, f, { type: 'F16' });
    assert.ok(f16.modules.every((m) => m.relError > 1e-6 && m.relError < 2e-3), `F16 rounding is measured: ${f16.modules.map((m) => m.relError).join(', ')}`);
  });

  it('refuses a module or a tensor that llama.cpp has no name for', () => {
    const [f] = factors([4], [1]);
    assert.throws(() => loraToGguf('llama', LLAMA_CFG, [{ ...f, path: 'model.layers.0.self_attn.rotary_proj' }]), (e: unknown) => InteropError.is(e, 'unsupported-model') && /rotary_proj: llama\.cpp's llama has no tensor for this module/.test((e as Error).message));
    const weights = weightsFromRecord({ 'model.layers.0.extra.weight': { shape: [2], data: new Float32Array(2) } });
    assert.throws(() => modelToGguf(LLAMA_CFG, weights), /tensor "model\.layers\.0\.extra\.weight" has no llama\.cpp llama name/);
    const tied = hfConfigFromJson({ model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_attention_heads: 2, num_hidden_layers: 2, vocab_size: 16, tie_word_embeddings: true });
    assert.throws(() => loraToGguf('llama', tied, [{ ...f, path: 'lm_head' }]), /lm_head: the model ties lm_head to the token embedding, so llama\.cpp has no output tensor/);
    const emb = { path: 'model.embed_tokens', rank: 4, scale: 1, A: { shape: [4, 300], data: new Float32Array(1200) }, B: { shape: [16, 4], data: new Float32Array(64) }, tiedToHead: true };
    assert.throws(() => loraToGguf('llama', LLAMA_CFG, [], { embeddings: [emb] }), /model\.embed_tokens: the model ties lm_head to this table; llama\.cpp would run the embedding LoRA through the output layer too/);
    const gpt2 = hfConfigFromJson({ model_type: 'gpt2', n_embd: 16, n_head: 2, n_layer: 1, vocab_size: 300, n_positions: 32 });
    assert.throws(() => loraToGguf('gpt2', gpt2, [], { embeddings: [{ ...emb, path: 'transformer.wpe', tiedToHead: false }] }), /transformer\.wpe: llama\.cpp applies LoRA to the token embedding only/);
    // A checkpoint that does not fit its config.json: wrong shape, missing weight.
    const small = hfConfigFromJson({ model_type: 'llama', hidden_size: 4, intermediate_size: 6, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 8 });
    const w = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const full: Record<string, { shape: number[]; data: Float32Array }> = {
      'model.embed_tokens.weight': w([8, 4]),
      'model.norm.weight': w([4]),
      'model.layers.0.input_layernorm.weight': w([4]),
      'model.layers.0.post_attention_layernorm.weight': w([4]),
      'model.layers.0.self_attn.q_proj.weight': w([4, 4]),
      'model.layers.0.self_attn.k_proj.weight': w([4, 4]),
      'model.layers.0.self_attn.v_proj.weight': w([4, 4]),
      'model.layers.0.self_attn.o_proj.weight': w([4, 4]),
      'model.layers.0.mlp.gate_proj.weight': w([6, 4]),
      'model.layers.0.mlp.up_proj.weight': w([6, 4]),
      'model.layers.0.mlp.down_proj.weight': w([4, 6]),
    };
    assert.equal(modelToGguf(small, weightsFromRecord(full)).file.tensors.length, 11);
    assert.throws(() => modelToGguf(small, weightsFromRecord({ ...full, 'model.layers.0.mlp.up_proj.weight': w([4, 6]) })), /tensor "model\.layers\.0\.mlp\.up_proj\.weight" has shape \[4, 6\] but config\.json \(llama\) needs \[6, 4\]/);
    const { 'model.layers.0.self_attn.v_proj.weight': _v, ...noV } = full;
    assert.throws(() => modelToGguf(small, weightsFromRecord(noV)), /tensor "model\.layers\.0\.self_attn\.v_proj\.weight" is missing \(llama\.cpp's blk\.0\.attn_v\.weight, shape \[4, 4\]\)/);
    const gelu = hfConfigFromJson({ model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 8, hidden_act: 'gelu' });
    assert.throws(() => modelToGguf(gelu, weights), /hidden_act "gelu": llama\.cpp's llama uses SiLU only/);
  });

  it('mlx-lm export: LoRA Lab\'s mlx reader gets the same ΔW back (ranks padded, scales folded)', () => {
    const f = factors([4, 8], [0.5, 3]);
    const mlx = loraToMlx('llama', 2, f);
    assert.equal(mlx.rank, 8);
    assert.deepEqual(mlx.config, { fine_tune_type: 'lora', num_layers: 2, lora_parameters: { rank: 8, scale: 0.5, dropout: 0, keys: ['self_attn.q_proj'] } });
    const st = parseSafetensors(serializeSafetensors(mlx.tensors));
    const layout = describeLayout({ tensors: st.names().map((n) => ({ name: n, dtype: st.entry(n).dtype, shape: st.entry(n).shape })), metadata: {}, otherConfig: mlx.config });
    assert.equal(layout.format, 'mlx');
    assert.deepEqual(layout.warnings, []);
    for (const [i, m] of f.entries()) {
      const mod = layout.modules.find((x) => x.name === `model.layers.${i}.self_attn.q_proj`)!;
      const dw = deltaW('mlx', mod, (n) => st.toFloat32(n));
      assert.deepEqual(dw.shape, [16, 16]);
      assert.ok(maxAbs(dw.data, reference(m)) < 1e-6, `module ${i}: ${maxAbs(dw.data, reference(m))}`);
      assert.ok(mlx.modules[i].relError < 1e-6);
    }
  });

  it('mlx-lm export: an untied Llama lm_head is a model-level key; a tied one or a module outside the blocks is refused', () => {
    const [f] = factors([4], [1]);
    const head = { ...f, path: 'lm_head' };
    const mlx = loraToMlx('llama', 2, [head, { ...f, path: 'model.layers.1.self_attn.q_proj' }], { tiedHead: false });
    assert.deepEqual(Object.keys(mlx.tensors).sort(), ['lm_head.lora_a', 'lm_head.lora_b', 'model.layers.1.self_attn.q_proj.lora_a', 'model.layers.1.self_attn.q_proj.lora_b']);
    assert.deepEqual(mlx.config.num_layers, 1, 'mlx-lm adapts the last num_layers blocks');
    assert.deepEqual((mlx.config.lora_parameters as { keys: string[] }).keys, ['lm_head', 'self_attn.q_proj']);
    assert.throws(() => loraToMlx('llama', 2, [head]), /lm_head: mlx-lm has no module of that name to adapt/);
    assert.throws(() => loraToMlx('gpt2', 2, [{ ...f, path: 'transformer.wte' }]), /transformer\.wte: mlx-lm has no module/);
  });

  it('mlx-lm export follows the layout of a real mlx-lm adapter (when ../shared/fixtures/real-world is present)', function () {
    const dir = path.join(REAL_WORLD, 'ml-explore__mlx-examples');
    if (!fs.existsSync(dir)) this.skip();
    const real = parseSafetensors(fs.readFileSync(path.join(dir, 'adapters.safetensors')));
    const realCfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as { lora_parameters: Record<string, unknown> };
    const ours = parseSafetensors(serializeSafetensors(loraToMlx('llama', 2, factors([8, 8], [10, 10])).tensors));
    const pattern = (n: string) => n.replace(/\d+/g, 'N');
    const realNames = new Set(real.names().map(pattern));
    for (const n of ours.names()) assert.ok(realNames.has(pattern(n)), `${n} is named like the real file's model.layers.N.self_attn.q_proj.lora_a / lora_b`);
    for (const [st, name] of [[real, real.names()[0]], [ours, ours.names()[0]]] as const) assert.equal(st.entry(name).dtype, 'F32');
    const a = (st: typeof real) => st.entry(st.names().find((n) => n.endsWith('.lora_a'))!).shape;
    const b = (st: typeof real) => st.entry(st.names().find((n) => n.endsWith('.lora_b'))!).shape;
    assert.equal(a(real)[1], b(real)[0], 'real: lora_a [in, r], lora_b [r, out]');
    assert.equal(a(ours)[1], b(ours)[0]);
    assert.deepEqual(ours.header.metadata, real.header.metadata, 'no __metadata__');
    assert.equal(typeof realCfg.lora_parameters.rank, 'number');
    assert.equal(typeof realCfg.lora_parameters.scale, 'number');
  });

  it('lora-lab convert: adapter to GGUF and mlx (table before writing), model to GGUF', () => {
    const fx = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const out = path.join(tmp, 'a.gguf');
    const r = cli('convert', path.join(fx, 'adapter'), '--model', path.join(fx, 'base'), '--to', 'gguf', '--out', out);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /model\.layers\.0\.self_attn\.q_proj\s+blk\.0\.attn_q\.weight\s+8\s+\S+\s+0\n/);
    assert.ok(r.out.indexOf('max rel. ΔW error') < r.out.indexOf('wrote'), 'the table comes before the file is written');
    const g = parseGguf(fs.readFileSync(out));
    assert.equal(g.metadata.get('general.architecture'), 'llama');
    assert.equal(g.metadata.get('adapter.lora.alpha'), 16);
    assert.equal(g.tensors.size, 16);
    const noExt = cli('convert', path.join(fx, 'adapter'), '--model', path.join(fx, 'base'), '--to', 'gguf', '--out', path.join(fx, 'base', 'model.safetensors'), '--force');
    assert.equal(noExt.code, 2);
    assert.match(noExt.err, /--out .*model\.safetensors: name the file to write with \.gguf at the end/);
    const copy = path.join(tmp, 'adapter-copy');
    fs.cpSync(path.join(fx, 'adapter'), copy, { recursive: true });
    const onInput = cli('convert', copy, '--model', path.join(fx, 'base'), '--to', 'mlx', '--out', copy, '--force');
    assert.equal(onInput.code, 1);
    assert.match(onInput.err, /is a folder the conversion reads; write the mlx-lm adapter to another folder/);
    assert.ok(fs.readFileSync(path.join(copy, 'adapter_config.json'), 'utf8').includes('peft_type'), 'the PEFT config is untouched');
    const again = cli('convert', path.join(fx, 'adapter'), '--model', path.join(fx, 'base'), '--to', 'gguf', '--out', out);
    assert.equal(again.code, 1);
    assert.match(again.err, /a\.gguf exists \(use --force to overwrite it\)/);

    const mlxDir = path.join(tmp, 'mlx');
    const m = cli('convert', path.join(fx, 'adapter'), '--model', path.join(fx, 'base'), '--to', 'mlx', '--out', mlxDir, '--json', '--dtype', 'bf16');
    assert.equal(m.code, 0, m.err);
    const summary = JSON.parse(m.out) as { modules: { relError: number }[]; scale: number };
    assert.equal(summary.scale, 2);
    assert.ok(summary.modules.every((x) => x.relError > 0 && x.relError < 1e-2), 'BF16 rounding is reported');
    assert.deepEqual(fs.readdirSync(mlxDir).sort(), ['adapter_config.json', 'adapters.safetensors']);

    const model = cli('convert', path.join(fx, 'base'), '--to', 'gguf', '--out', path.join(tmp, 'base.gguf'), '--json');
    assert.equal(model.code, 0, model.err);
    const mg = parseGguf(fs.readFileSync(path.join(tmp, 'base.gguf')));
    assert.equal(mg.metadata.get('llama.attention.head_count_kv'), 2);
    assert.equal(mg.tensors.get('blk.0.attn_q.weight')!.type, 'F16');
    assert.equal(mg.tensors.get('blk.0.attn_norm.weight')!.type, 'F32');
    assert.match(model.err, /placeholder tokens/);
  });

  it("mlx-lm export of a DoRA adapter: mlx-lm's fuse of the written tensors equals PEFT's merge_and_unload within 1e-5", () => {
    const fx = path.join(PEFT_FIXTURES, 'llama-tiny-dora');
    const out = path.join(tmp, 'dora-mlx');
    const r = cli('convert', path.join(fx, 'adapter'), '--model', path.join(fx, 'base'), '--to', 'mlx', '--out', out, '--json');
    assert.equal(r.code, 0, r.err);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as { fine_tune_type: string; lora_parameters: { scale: number; rank: number } };
    assert.equal(cfg.fine_tune_type, 'dora');
    const st = parseSafetensors(fs.readFileSync(path.join(out, 'adapters.safetensors')));
    const base = parseSafetensors(fs.readFileSync(path.join(fx, 'base/model.safetensors')));
    const merged = parseSafetensors(fs.readFileSync(path.join(fx, 'merged/model.safetensors')));
    const keys = st.names().filter((n) => n.endsWith('.m')).map((n) => n.slice(0, -2));
    assert.equal(keys.length, 4, 'q_proj and v_proj of 2 layers');
    const s = cfg.lora_parameters.scale;
    const R = cfg.lora_parameters.rank;
    let worst = 0;
    for (const k of keys) {
      // mlx-lm's DoRALinear.fuse: w = W + s·bᵀ·aᵀ, then each row scaled by m / ‖row‖.
      const [inF] = st.entry(`${k}.lora_a`).shape;
      const W = base.toFloat32(`${k}.weight`);
      const out = W.length / inF;
      const a = st.toFloat32(`${k}.lora_a`);
      const b = st.toFloat32(`${k}.lora_b`);
      const m = st.toFloat32(`${k}.m`);
      const fused = new Float32Array(W.length);
      for (let o = 0; o < out; o++) {
        let norm = 0;
        for (let i = 0; i < inF; i++) {
          let d = 0;
          for (let q = 0; q < R; q++) d += b[q * out + o] * a[i * R + q];
          fused[o * inF + i] = W[o * inF + i] + s * d;
          norm += fused[o * inF + i] ** 2;
        }
        for (let i = 0; i < inF; i++) fused[o * inF + i] *= m[o] / Math.sqrt(norm);
      }
      worst = Math.max(worst, maxAbs(fused, merged.toFloat32(`${k}.weight`)));
    }
    assert.ok(worst < 1e-5, `max |Δ| against PEFT's merged weights ${worst}`);
  });

  it('refuses, with the reason: a DoRA adapter, a missing base, a base of another shape or architecture', () => {
    const dora = path.join(PEFT_FIXTURES, 'llama-tiny-dora');
    const d = cli('convert', path.join(dora, 'adapter'), '--model', path.join(dora, 'base'), '--to', 'gguf', '--out', path.join(tmp, 'dora.gguf'));
    assert.equal(d.code, 1);
    assert.match(d.err, /q_proj: a DoRA adapter \(use_dora, lora_magnitude_vector\) cannot become a llama\.cpp GGUF adapter: llama\.cpp has no DoRA/);
    assert.ok(!fs.existsSync(path.join(tmp, 'dora.gguf')));

    const fx = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const noBase = cli('convert', path.join(fx, 'adapter'), '--to', 'gguf', '--out', path.join(tmp, 'x.gguf'));
    assert.equal(noBase.code, 1);
    assert.match(noBase.err, /the adapter's base model is needed to convert it .*it does not name one\. Give the folder with --model DIR/);

    const small = path.join(tmp, 'small-llama');
    writeTinyLlama(small, { hidden: 32, heads: 2, kvHeads: 1, ff: 48, vocab: 256 });
    const shape = cli('convert', path.join(fx, 'adapter'), '--model', small, '--to', 'gguf', '--out', path.join(tmp, 'y.gguf'));
    assert.equal(shape.code, 1);
    assert.match(shape.err, /has shape \[8, 64\] but model\.layers\.0\.self_attn\.\w_proj \(in 32, out \d+, r 8\) needs \[8, 32\]/);

    const arch = cli('convert', path.join(fx, 'adapter'), '--model', path.join(ROOT, 'examples/models/tiny-gpt2'), '--to', 'mlx', '--out', path.join(tmp, 'z'));
    assert.equal(arch.code, 1);
    assert.match(arch.err, /match no linear layer of this gpt2 model/);

    const big = path.join(tmp, 'adapter-for-small');
    writeAdapter(big, llamaModules({ hidden: 32, heads: 2, kvHeads: 1, ff: 48 }), { r: 4, lora_alpha: 8, target_modules: ['q_proj'], modules_to_save: ['lm_head'] }, 5);
    const st = parseSafetensors(fs.readFileSync(path.join(big, 'adapter_model.safetensors')));
    const tensors = Object.fromEntries(st.names().map((n) => [n, { dtype: 'F32' as const, shape: st.entry(n).shape, data: st.toFloat32(n) }]));
    tensors['base_model.model.lm_head.modules_to_save.default.weight'] = { dtype: 'F32', shape: [256, 32], data: new Float32Array(256 * 32) };
    fs.writeFileSync(path.join(big, 'adapter_model.safetensors'), serializeSafetensors(tensors));
    const mts = cli('convert', big, '--model', small, '--to', 'gguf', '--out', path.join(tmp, 'w.gguf'));
    assert.equal(mts.code, 1);
    assert.match(mts.err, /1 tensor\(s\) replace base weights \(modules_to_save or trained biases, e\.g\. "lm_head\.weight"\); a llama\.cpp GGUF adapter carries LoRA factors only/);
  });
});
