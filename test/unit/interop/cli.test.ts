// `lora-lab logits`, `merge` and `inspect`, run as a user would (a child process through tsx).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { PEFT_FIXTURES, maxAbsDiff, readReference } from './helpers';

const ROOT = path.resolve(__dirname, '../../..');

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('interop: lora-lab logits / merge / inspect', function () {
  this.timeout(60000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-interop-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('logits with a DoRA adapter equal PEFT within 1e-4 (default backend)', () => {
    const ref = readReference('llama-tiny-dora');
    const ids = path.join(tmp, 'ids.json');
    fs.writeFileSync(ids, JSON.stringify(ref.probe_input_ids));
    const out = path.join(tmp, 'logits.json');
    const dir = path.join(PEFT_FIXTURES, 'llama-tiny-dora');
    const r = cli('logits', '--model', path.join(dir, 'base'), '--adapter', path.join(dir, 'adapter'), '--input-ids', ids, '--out', out);
    assert.equal(r.code, 0, r.err);
    const got = JSON.parse(fs.readFileSync(out, 'utf8')) as { shape: number[]; data: number[] };
    assert.deepEqual(got.shape, [2, 16, 256]);
    const d = maxAbsDiff(got.data, ref.adapted_logits);
    assert.ok(d < 1e-4, `max |Δ| ${d}`);
  });

  it('merge writes a loadable folder equal to merge_and_unload within 1e-5', () => {
    const dir = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const out = path.join(tmp, 'merged');
    const r = cli('merge', '--model', path.join(dir, 'base'), '--adapter', path.join(dir, 'adapter'), '--out', out, '--json');
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).mergedModules, 8);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')), JSON.parse(fs.readFileSync(path.join(dir, 'base/config.json'), 'utf8')));
    const got = parseSafetensors(fs.readFileSync(path.join(out, 'model.safetensors')));
    const want = parseSafetensors(fs.readFileSync(path.join(dir, 'merged/model.safetensors')));
    assert.deepEqual(got.names().sort(), want.names().sort());
    let worst = 0;
    for (const n of want.names()) worst = Math.max(worst, maxAbsDiff(got.toFloat32(n), want.toFloat32(n)));
    assert.ok(worst < 1e-5, `max |Δ| ${worst}`);
    // …and the merged folder runs: its logits equal PEFT's merged_logits.
    const ids = path.join(tmp, 'ids2.json');
    fs.writeFileSync(ids, JSON.stringify(readReference('llama-tiny-qkvo-r8').probe_input_ids));
    const lo = path.join(tmp, 'merged-logits.json');
    assert.equal(cli('logits', '--model', out, '--input-ids', ids, '--out', lo, '--backend', 'cpu').code, 0);
    const d = maxAbsDiff((JSON.parse(fs.readFileSync(lo, 'utf8')) as { data: number[] }).data, readReference('llama-tiny-qkvo-r8').merged_logits);
    assert.ok(d < 1e-4, `merged logits max |Δ| ${d}`);
  });

  it('merge never writes over the model or adapter folder it reads, nor onto a file', () => {
    const dir = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const copy = path.join(tmp, 'base-copy');
    fs.cpSync(path.join(dir, 'base'), copy, { recursive: true });
    const before = fs.readFileSync(path.join(copy, 'model.safetensors'));
    const r = cli('merge', '--model', copy, '--adapter', path.join(dir, 'adapter'), '--out', copy + '/', '--force');
    assert.equal(r.code, 1);
    assert.match(r.err, /--out .*base-copy is the --model folder; write the merged model to another folder/);
    assert.ok(fs.readFileSync(path.join(copy, 'model.safetensors')).equals(before), 'the base weights are untouched');
    const onFile = cli('merge', '--model', copy, '--adapter', path.join(dir, 'adapter'), '--out', path.join(copy, 'config.json'));
    assert.equal(onFile.code, 1);
    assert.match(onFile.err, /--out .*config\.json: is a file; expected a folder for the merged model/);
  });

  it('merge refuses NaN results and writes nothing, as safe_merge does', () => {
    const dir = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const bad = path.join(tmp, 'nan-adapter');
    fs.mkdirSync(bad);
    fs.copyFileSync(path.join(dir, 'adapter/adapter_config.json'), path.join(bad, 'adapter_config.json'));
    const st = parseSafetensors(fs.readFileSync(path.join(dir, 'adapter/adapter_model.safetensors')));
    const tensors: Record<string, TensorToWrite> = {};
    for (const n of st.names()) tensors[n] = { dtype: 'F32', shape: st.entry(n).shape, data: st.toFloat32(n) };
    (tensors['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'].data as Float32Array)[3] = NaN;
    fs.writeFileSync(path.join(bad, 'adapter_model.safetensors'), serializeSafetensors(tensors));
    const out = path.join(tmp, 'nan-merged');
    const r = cli('merge', '--model', path.join(dir, 'base'), '--adapter', bad, '--out', out);
    assert.equal(r.code, 1);
    assert.match(r.err, /NaNs detected in the merged weights of model\.layers\.1\.self_attn\.v_proj.*adapter "nan-adapter" seems to be broken/);
    assert.ok(!fs.existsSync(path.join(out, 'model.safetensors')));
  });

  it('inspect: PEFT folder as JSON (exit 0), a Git LFS pointer (exit 1), a pickle refused unopened (exit 1)', () => {
    const ok = cli('inspect', path.join(PEFT_FIXTURES, 'llama-tiny-dora/adapter'), '--json');
    assert.equal(ok.code, 0, ok.err);
    const rep = JSON.parse(ok.out);
    assert.equal(rep.format, 'peft');
    assert.equal(rep.totals.params, readReference('llama-tiny-dora').trainable_params); // 2 × (q: 4·64+64·4+64, v: 4·64+32·4+32) = 1984
    assert.ok(rep.modules.every((m: { tensors: Record<string, unknown> }) => 'lora_magnitude_vector' in m.tensors));
    const lfs = path.join(tmp, 'pointer.safetensors');
    fs.writeFileSync(lfs, 'version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 912556812\n');
    const r1 = cli('inspect', lfs);
    assert.equal(r1.code, 1);
    assert.match(r1.out, /Git LFS pointer to a 912556812-byte object/);
    const pk = path.join(tmp, 'adapter_model.bin');
    fs.writeFileSync(pk, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e, 0, 0, 0, 0]));
    const r2 = cli('inspect', pk);
    assert.equal(r2.code, 1);
    assert.match(r2.out, /PyTorch pickle: refused, never unpickled/);
  });

  it('logits: bad token ids are a clear error', () => {
    const ids = path.join(tmp, 'bad-ids.json');
    fs.writeFileSync(ids, '[[1, 2, 300]]');
    const r = cli('logits', '--model', path.join(PEFT_FIXTURES, 'llama-tiny-dora/base'), '--input-ids', ids, '--out', path.join(tmp, 'x.json'), '--backend', 'cpu');
    assert.equal(r.code, 1);
    assert.match(r.err, /bad-ids\.json: input ids: row 0 position 2 is 300, expected an integer in \[0, 256\)/);
    fs.writeFileSync(ids, JSON.stringify([Array.from({ length: 200 }, () => 1)]));
    const long = cli('logits', '--model', 'examples/models/tiny-gpt2', '--input-ids', ids, '--out', path.join(tmp, 'x.json'), '--backend', 'cpu');
    assert.equal(long.code, 1);
    assert.match(long.err, /bad-ids\.json: input ids: sequence length 200 exceeds the model's n_positions 128/);
  });

  it('logits: missing folders, an adapter for another model and an unwritable --out are named; --json', () => {
    const ids = path.join(tmp, 'ids-ok.json');
    fs.writeFileSync(ids, '[[1, 2, 3]]');
    const llama = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
    const noModel = cli('logits', '--model', path.join(tmp, 'nope'), '--input-ids', ids, '--out', path.join(tmp, 'x.json'));
    assert.equal(noModel.code, 1);
    assert.match(noModel.err, /nope: no such folder; expected a Hugging Face model \(config\.json \+ model\.safetensors\)/);
    const fileModel = cli('logits', '--model', path.join(llama, 'base/config.json'), '--input-ids', ids, '--out', path.join(tmp, 'x.json'));
    assert.match(fileModel.err, /config\.json: is a file; expected the folder that holds a Hugging Face model/);
    const named = path.join(tmp, 'named-adapter');
    fs.mkdirSync(named);
    fs.copyFileSync(path.join(llama, 'adapter/adapter_model.safetensors'), path.join(named, 'adapter_model.safetensors'));
    const cfg = JSON.parse(fs.readFileSync(path.join(llama, 'adapter/adapter_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(named, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: 'org/tiny-llama' }));
    const other = cli('logits', '--model', 'examples/models/tiny-gpt2', '--adapter', named, '--input-ids', ids, '--out', path.join(tmp, 'x.json'));
    assert.equal(other.code, 1);
    assert.match(other.err, /target_modules .* match no linear layer of this gpt2 model .*; the adapter was made for org\/tiny-llama/);
    const noDir = cli('logits', '--model', path.join(llama, 'base'), '--input-ids', ids, '--out', path.join(tmp, 'missing-dir', 'x.json'), '--backend', 'cpu');
    assert.equal(noDir.code, 1);
    assert.match(noDir.err, /--out .*missing-dir\/x\.json: cannot write it \(its folder does not exist\)/);
    const json = cli('logits', '--model', path.join(llama, 'base'), '--input-ids', ids, '--out', path.join(tmp, 'ok.json'), '--backend', 'cpu', '--json');
    assert.equal(json.code, 0, json.err);
    const o = JSON.parse(json.out) as { out: string; shape: number[]; backend: string };
    assert.deepEqual([o.out, o.shape, o.backend], [path.join(tmp, 'ok.json'), [1, 3, 256], 'cpu']);
    assert.equal(json.err, '');
  });
});
