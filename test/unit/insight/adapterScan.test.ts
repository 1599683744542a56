// The adapter browser's scan (src/insight/adapterScan.ts) in plain Node: speed on many large files from
// headers only, and the real-world corpus when ../shared/fixtures/real-world is present.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatBytes } from '../../../src/shared/format';
import { adapterDescription, adapterTooltip, checkAdapterValues, groupAdapters, isMergeable, moduleDescription, readableSizes, scanAdapters, type ScanInput } from '../../../src/insight/adapterScan';

const realWorld = path.resolve(__dirname, '../../../../shared/fixtures/real-world');
const peftCase = path.resolve(__dirname, '../../fixtures/peft/llama-tiny-qkvo-r8');
const TSX_LOADER = pathToFileURL(path.resolve(__dirname, '../../../node_modules/tsx/dist/loader.mjs')).href;

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** A safetensors file of zero-filled F32 tensors (shapes only matter here). */
function writeSafetensors(file: string, shapes: Record<string, number[]>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(offset)]));
}

function inputFor(root: string): ScanInput {
  const files = walk(root);
  return {
    safetensors: files.filter((f) => f.endsWith('.safetensors')),
    adapterConfigs: files.filter((f) => path.basename(f) === 'adapter_config.json'),
    modelDirs: files.filter((f) => path.basename(f) === 'config.json').map((f) => path.dirname(f)),
    roots: [root],
  };
}

describe('insight/adapterScan', function () {
  this.timeout(20_000);
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-scan-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists 300 large (sparse, 64 MiB) kohya files from their headers alone', async () => {
    const dir = path.join(tmp, 'many');
    fs.mkdirSync(dir);
    // One real header whose data section is declared 64 MiB long; the file is extended sparsely.
    const r = 8;
    const d = 2048;
    const big = 64 * 1024 * 1024;
    // Build the header by hand so that no 64 MiB buffer is ever allocated.
    const n1 = r * d * 4;
    const json = JSON.stringify({
      __metadata__: { ss_network_dim: String(r) },
      'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight': { dtype: 'F32', shape: [r, d], data_offsets: [0, n1] },
      'lora_unet_mid_block_attentions_0_proj_in.lora_up.weight': { dtype: 'F32', shape: [(big - n1) / 4 / r, r], data_offsets: [n1, big] },
    }).padEnd(1024, ' ');
    const head = Buffer.alloc(8 + json.length);
    head.writeBigUInt64LE(BigInt(json.length), 0);
    head.write(json, 8, 'latin1');
    for (let i = 0; i < 300; i++) {
      const f = path.join(dir, `style-${i}.safetensors`);
      fs.writeFileSync(f, head);
      fs.truncateSync(f, head.length + big);
    }
    // Listing time is the bench's (npm run bench, uiBench.ts); here: every file listed from its header.
    const found = await scanAdapters(inputFor(dir));
    assert.equal(found.length, 300);
    assert.ok(found.every((a) => a.format === 'kohya' && a.modules.length === 1 && a.ranks[0] === r));
    // Too big for the values pass: it stays header-only.
    assert.equal(await checkAdapterValues(found[0]), false);
  });

  it('FIFOs in the workspace (weights, adapter_config.json, a pickle-named sibling) are skipped, never waited on', async function () {
    if (process.platform === 'win32') this.skip();
    const ws = path.join(tmp, 'fifo-ws');
    const mkfifo = (p: string) => {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      execFileSync('mkfifo', [p]);
    };
    const cfgText = fs.readFileSync(path.join(peftCase, 'adapter', 'adapter_config.json'), 'utf8');
    fs.mkdirSync(path.join(ws, 'ok'), { recursive: true });
    fs.copyFileSync(path.join(peftCase, 'adapter', 'adapter_model.safetensors'), path.join(ws, 'ok', 'adapter_model.safetensors'));
    fs.writeFileSync(path.join(ws, 'ok', 'adapter_config.json'), cfgText);
    mkfifo(path.join(ws, 'pipe-lora.safetensors'));
    mkfifo(path.join(ws, 'cfg', 'adapter_config.json'));
    fs.mkdirSync(path.join(ws, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(ws, 'bin', 'adapter_config.json'), cfgText);
    mkfifo(path.join(ws, 'bin', 'adapter_model.bin'));
    const input = inputFor(ws);
    input.safetensors.push(path.join(ws, 'pipe-lora.safetensors'));
    input.adapterConfigs.push(path.join(ws, 'cfg', 'adapter_config.json'));
    // In a child process: a scan blocked on a FIFO (the bug; some reads are synchronous) would block
    // this one for good. The child is stopped after 30 s instead.
    const script = `const m = await import(${JSON.stringify(pathToFileURL(path.resolve(__dirname, '../../../src/insight/adapterScan.ts')).href)});
const scanAdapters = m.scanAdapters ?? m.default.scanAdapters;
const found = await scanAdapters(JSON.parse(process.argv[1]));
console.log(JSON.stringify(found.map((a) => ({ path: a.path, format: a.format }))));`;
    const r = spawnSync(process.execPath, ['--import', TSX_LOADER, '--input-type=module', '-e', script, JSON.stringify(input)], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, 'the scan blocked on a FIFO (stopped after 30 s)');
    assert.equal(r.status, 0, r.stderr);
    const found = JSON.parse(r.stdout) as { path: string; format: string }[];
    assert.ok(found.some((a) => a.path === path.join(ws, 'ok') && a.format === 'peft'), r.stdout);
    assert.ok(!found.some((a) => a.path.includes('pipe-lora') || a.path.endsWith('cfg')));
  });

  it('describes a PEFT folder with its base model found by relative path, and checks values in the background', async () => {
    const ws = path.join(tmp, 'ws');
    fs.cpSync(path.join(peftCase, 'base'), path.join(ws, 'models', 'llama-tiny'), { recursive: true });
    fs.mkdirSync(path.join(ws, 'adapters', 'a'), { recursive: true });
    fs.copyFileSync(path.join(peftCase, 'adapter', 'adapter_model.safetensors'), path.join(ws, 'adapters', 'a', 'adapter_model.safetensors'));
    const cfg = JSON.parse(fs.readFileSync(path.join(peftCase, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(ws, 'adapters', 'a', 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: '../../models/llama-tiny' }));
    const [a] = await scanAdapters(inputFor(ws));
    assert.equal(a.format, 'peft');
    assert.equal(a.modules.length, 8);
    assert.equal(a.totalParams, 7168);
    assert.equal(a.baseFound, path.join(ws, 'models', 'llama-tiny'));
    assert.match(a.baseNote, /found at/);
    assert.equal(a.valuesChecked, false);
    await checkAdapterValues(a);
    assert.equal(a.valuesChecked, true);
    assert.deepEqual(a.warnings, []);
  });

  it('shows a PEFT embedding LoRA as "embedding V×H" (vocab × dim), a linear one as in→out', async () => {
    const dir = path.join(tmp, 'emb', 'adapter-emb');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['embed_tokens', 'q_proj'], bias: 'none' }));
    // PEFT's lora.Embedding: lora_embedding_A [r, num_embeddings], lora_embedding_B [embedding_dim, r]; V 256, H 64.
    writeSafetensors(path.join(dir, 'adapter_model.safetensors'), {
      'base_model.model.model.embed_tokens.lora_embedding_A': [4, 256],
      'base_model.model.model.embed_tokens.lora_embedding_B': [64, 4],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [4, 64],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [32, 4],
    });
    const [a] = await scanAdapters(inputFor(path.join(tmp, 'emb')));
    assert.equal(a.format, 'peft');
    const emb = a.modules.find((m) => m.name.endsWith('embed_tokens'))!;
    const q = a.modules.find((m) => m.name.endsWith('q_proj'))!;
    assert.equal(emb.embedding, true);
    assert.equal(moduleDescription(emb), 'r 4 · α 8 · s 2 · embedding 256×64 · 1,280 params · F32');
    assert.equal(moduleDescription(q), 'r 4 · α 8 · s 2 · 64→32 · 384 params · F32');
  });

  (fs.existsSync(realWorld) ? it : it.skip)('reads the real-world corpus: formats, LFS pointers, metadata as strings', async () => {
    const found = await scanAdapters(inputFor(realWorld));
    const by = (rel: string) => found.find((a) => path.relative(realWorld, a.path) === rel);
    const expect: [string, string][] = [
      ['peft-anirudh-ak__peft-gpt2', 'peft'],
      ['peft-Tashu014__lora-imdb-distilbert', 'peft'],
      ['ml-explore__mlx-examples', 'mlx'],
      ['KohakuBlueleaf__LyCORIS/smart_falcon_4_lokr.safetensors', 'lycoris'],
      ['cloneofsimo__lora/lora_disney.safetensors', 'cloneofsimo'],
      ['wellCh4n__pokemon-diffusers/pytorch_lora_weights.safetensors', 'diffusers-legacy'],
      ['MathieuNlp__Sam_LoRA/lora_rank2.safetensors', 'unknown-lora'],
    ];
    for (const [rel, format] of expect) assert.equal(by(rel)?.format, format, `${rel}: ${by(rel)?.formatLabel ?? 'not listed'}`);
    assert.match(by('peft-Yairama__alpaca-miner__LFS_POINTER_WEIGHTS')!.warnings.join(' '), /Git LFS pointer/);
    assert.match(by('bawgz__dripfusion/MALFORMED_lfs_pointer_drip_glasses.safetensors')!.warnings.join(' '), /Git LFS pointer/);
    assert.equal(by('peft-anirudh-ak__peft-gpt2')!.baseModel, 'gpt2');
    // An mlx-lm adapter is not warned about for lacking PEFT's fields.
    assert.ok(!by('ml-explore__mlx-examples')!.warnings.some((w) => /PEFT would refuse/.test(w)), by('ml-explore__mlx-examples')!.warnings.join('; '));
    // The hostile-metadata files are models, not adapters; no upstream test vector shows up as one: they
    // are listed apart (the tree's "Unreadable or not LoRA" group), each with the reason.
    const others = found.filter((a) => a.path.includes('promptfoo__modelaudit') || a.path.includes('safetensors-upstream-vectors'));
    for (const a of others) {
      assert.ok(a.problem, `${a.path} listed as an adapter (${a.formatLabel})`);
      assert.ok(a.warnings.length > 0, `${a.path}: no reason given`);
    }
    // The LFS pointer's size reads as a size.
    assert.match(by('bawgz__dripfusion/MALFORMED_lfs_pointer_drip_glasses.safetensors')!.warnings.join(' '), /a 870 MiB \(912,556,812 bytes\) object/);
    for (const a of found) for (const [k, v] of a.metadata) assert.ok(typeof k === 'string' && typeof v === 'string');
  });
  it('groups: our runs (newest first, with date, time and loss), third-party by format, then unreadable or non-LoRA files with the reason', async () => {
    const dir = path.join(tmp, 'groups');
    fs.mkdirSync(dir);
    // A kohya-named LoRA file, a 2-byte file, a non-LoRA tensor file, and a model folder's weights.
    writeSafetensors(path.join(dir, 'style.safetensors'), { 'lora_unet_x.lora_down.weight': [4, 16], 'lora_unet_x.lora_up.weight': [16, 4], 'lora_unet_x.alpha': [] });
    fs.writeFileSync(path.join(dir, 'two-bytes.safetensors'), Buffer.from([1, 2]));
    writeSafetensors(path.join(dir, 'embeddings.safetensors'), { table: [10, 4] });
    fs.mkdirSync(path.join(dir, 'model'));
    fs.writeFileSync(path.join(dir, 'model', 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
    writeSafetensors(path.join(dir, 'model', 'model.safetensors'), { 'h.0.attn.c_attn.weight': [4, 12] });
    // Two runs of one config (same name), each with its adapter/.
    for (const [id, createdAt, loss, ms] of [
      ['rec-20261205-100000-aaaa', new Date(2026, 11, 5, 10, 0).toISOString(), 0.25, 9_000],
      ['rec-20261206-140300-bbbb', new Date(2026, 11, 6, 14, 3).toISOString(), 0.0125, 64_000],
    ] as const) {
      const runDir = path.join(dir, 'lora-runs', id);
      fs.mkdirSync(path.join(runDir, 'adapter'), { recursive: true });
      fs.cpSync(path.join(peftCase, 'adapter', 'adapter_config.json'), path.join(runDir, 'adapter', 'adapter_config.json'));
      fs.cpSync(path.join(peftCase, 'adapter', 'adapter_model.safetensors'), path.join(runDir, 'adapter', 'adapter_model.safetensors'));
      fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({ name: 'rec', kind: 'low-rank-recovery', status: 'completed', createdAt, step: 300, totalSteps: 300, lastLoss: loss }));
      fs.writeFileSync(path.join(runDir, 'metrics.jsonl'), `${JSON.stringify({ step: 300, loss, lr: 0.01, gradNorm: 1, elapsedMs: ms })}\n`);
    }
    const found = await scanAdapters(inputFor(dir));
    const groups = groupAdapters(found);
    assert.deepEqual(
      groups.map((g) => [g.label, g.adapters.map((a) => a.label)]),
      [
        ['LoRA Lab runs', ['rec (run)', 'rec (run)']],
        ['kohya / Civitai', ['style.safetensors']],
        ['Unreadable or not LoRA', ['embeddings.safetensors', 'two-bytes.safetensors']],
      ],
    );
    const now = new Date(2026, 11, 6, 15, 0);
    const [newest, older] = groups[0].adapters;
    assert.match(adapterDescription(newest, now), /^completed · today 14:03 · 1 min 04 s · loss 0\.01250 · r 8 · /);
    assert.match(adapterDescription(older, now), /^completed · Dec 5 10:00 · 9 s · loss 0\.2500 · /);
    const [notLora, tiny] = groups[2].adapters;
    assert.match(adapterDescription(notLora), /^not a LoRA adapter: none of its 1 tensor has LoRA names/);
    assert.equal(tiny.problem, 'unreadable');
    assert.match(tiny.warnings[0], /2 bytes/);
    // The tooltip has the whole text the row's description may cut.
    assert.ok(adapterTooltip(notLora).includes(notLora.warnings[0]));
    assert.ok(adapterTooltip(newest).includes(newest.path));
  });

  it('Merge is offered for PEFT adapters of a real model only (not a built-in experiment run, not other formats)', () => {
    assert.equal(isMergeable({ format: 'peft', runDir: undefined, baseModel: 'meta-llama/Llama-2-7b-hf' }), true);
    assert.equal(isMergeable({ format: 'peft', runDir: '/w/lora-runs/r1', baseModel: '/w/models/gpt2' }), true);
    assert.equal(isMergeable({ format: 'peft', runDir: '/w/lora-runs/rec', baseModel: undefined }), false);
    assert.equal(isMergeable({ format: 'kohya', runDir: undefined, baseModel: 'sd15' }), false);
    assert.equal(isMergeable({ format: 'unreadable', runDir: undefined, baseModel: 'x' }), false);
  });

  it('sizes read as sizes: 870 MiB, 1.5 KiB, 12 bytes', () => {
    assert.equal(formatBytes(912_556_812), '870 MiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(12), '12 bytes');
    assert.equal(formatBytes(5 * 1024 ** 4), '5 TiB');
    assert.equal(readableSizes('x is a Git LFS pointer to a 16822989-byte object, not the weights'), 'x is a Git LFS pointer to a 16 MiB (16,822,989 bytes) object, not the weights');
  });
});
