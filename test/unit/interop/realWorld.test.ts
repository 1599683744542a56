// The real-world corpus (../shared/fixtures/real-world, provenance in its PROVENANCE.txt): every file is
// either read correctly or rejected with the right message. The files are not ours to commit, so this
// suite reads them where they exist and skips, saying so, where they do not.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectAdapter, type InspectReport } from '../../../src/formats/adapters/inspect';
import { deltaW } from '../../../src/formats/adapters/deltaW';
import { loadInspectInput } from '../../../src/io/hfFolder';
import { REAL_WORLD } from './helpers';

const present = fs.existsSync(path.join(REAL_WORLD, 'PROVENANCE.txt'));

async function inspect(rel: string, readValues = true): Promise<InspectReport> {
  return inspectAdapter(await loadInspectInput(path.join(REAL_WORLD, rel), { readValues }));
}

type Expect = (r: InspectReport) => void;
const adapter = (format: string, modules: number, rank: number | number[], scale?: number): Expect => (r) => {
  assert.deepEqual(r.errors, [], r.errors.join('\n'));
  assert.equal(r.format, format);
  assert.equal(r.totals.modules, modules);
  const ranks = Array.isArray(rank) ? rank : [rank];
  assert.deepEqual(Object.keys(r.ranks).map(Number).sort((a, b) => a - b), ranks);
  if (scale !== undefined) assert.ok(r.modules.every((m) => Math.abs(m.scale - scale) < 1e-9), `scales ${[...new Set(r.modules.map((m) => m.scale))]}`);
  assert.match(r.baseModelStatement, /cannot run without/);
  assert.ok(!r.warnings.some((w) => /NaN|Inf/.test(w)), 'finite values');
};
const notAdapter: Expect = (r) => {
  assert.deepEqual(r.errors, []);
  assert.equal(r.format, 'not-an-adapter');
  assert.equal(r.totals.modules, 0);
};
const rejected = (re: RegExp): Expect => (r) => {
  assert.equal(r.format, 'unreadable');
  assert.ok(r.errors.some((e) => re.test(e)), `errors: ${r.errors.join(' | ')}`);
};

const CASES: Record<string, Expect> = {
  'KohakuBlueleaf__LyCORIS/smart_falcon_4_lokr.safetensors': (r) => {
    adapter('lycoris', 350, 4, 1)(r);
    assert.ok(r.modules.every((m) => m.kind === 'lokr' && m.alpha === 4 && m.alphaSource === 'tensor' && m.dtype === 'F16'));
    assert.equal(r.baseModel, 'animefull-final-pruned.safetensors');
    assert.deepEqual((r.metadataJson.ss_network_args as Record<string, string>).algo, 'lokr');
    assert.deepEqual(r.modules.find((m) => m.name === 'lora_te_text_model_encoder_layers_0_mlp_fc1')!.deltaShape, [3072, 768]);
    // conv: the old LyCORIS flattens [out, in·kh·kw] = [320, 320·9]
    assert.deepEqual(r.modules.find((m) => m.name === 'lora_unet_down_blocks_0_resnets_0_conv1')!.deltaShape, [320, 2880]);
  },
  'KohakuBlueleaf__LyCORIS/smart_falcon_8_lokr.safetensors': (r) => {
    adapter('lycoris', 350, 8, 1)(r);
    assert.ok(r.modules.every((m) => m.alpha === 8));
  },
  'MathieuNlp__Sam_LoRA/lora_rank2.safetensors': (r) => {
    assert.equal(r.format, 'unknown-lora');
    // w_a_000 [2, 768] + w_b_000 [768, 2] … paired by index: 24 rank-2 modules, layers unnamed
    assert.equal(r.totals.modules, 24);
    assert.deepEqual(r.ranks, { 2: 24 });
    assert.equal(r.modules[0].name, 'w_*_000');
    assert.deepEqual(r.modules[0].deltaShape, [768, 768]);
    assert.equal(r.extras.length, 0);
    assert.ok(r.warnings.some((w) => /unknown LoRA layout/.test(w)));
  },
  'bawgz__dripfusion/MALFORMED_lfs_pointer_drip_glasses.safetensors': rejected(/Git LFS pointer to a 912556812-byte object.*git lfs pull/),
  'cloneofsimo__lora/analog_svd_rank4.safetensors': (r) => {
    adapter('cloneofsimo', 192, 4, 1)(r);
    assert.equal(r.dtypes.F16, 384);
  },
  'cloneofsimo__lora/lora_disney.safetensors': (r) => {
    adapter('cloneofsimo', 192, 1, 1)(r);
    assert.deepEqual(r.extras.map((t) => t.name).sort(), ['<s1>', '<s2>']);
    assert.ok(r.warnings.some((w) => /textual-inversion token embedding\(s\): <s1>, <s2>/.test(w)));
  },
  'huggingface__candle/jfk-codes.safetensors': (r) => {
    notAdapter(r);
    assert.deepEqual(r.dtypes, { I64: 1 });
  },
  'huggingface__candle/mel_filters.safetensors': notAdapter,
  'leighwoods__public-loras/MALFORMED_crlf_only_Much7835.safetensors': rejected(/not a valid safetensors file.*2 bytes/),
  'leighwoods__public-loras/lora_flux_aitoolkit.safetensors': (r) => {
    adapter('diffusers-peft', 4, 16, 1)(r);
    assert.deepEqual(r.modules[0].deltaShape, [3072, 15360]);
    assert.ok(r.warnings.some((w) => /ss_base_model_version "sd_1\.5".*transformer/.test(w)), r.warnings.join('\n'));
    assert.ok(r.warnings.some((w) => /scale 1/.test(w)));
    assert.equal((r.metadataJson.software as Record<string, string>).name, 'ai-toolkit');
  },
  'ml-explore__mlx-examples': (r) => {
    adapter('mlx', 8, 8, 10)(r);
    assert.ok(r.warnings.some((w) => /mlx-lm config \(no peft_type\)/.test(w)));
    assert.ok(r.warnings.some((w) => /absolute scale 10.*alpha \/ rank = 2/.test(w)));
    assert.deepEqual(r.modules[0].deltaShape, [2304, 2304]);
  },
  'peft-Tashu014__lora-imdb-distilbert': (r) => {
    adapter('peft', 12, 8, 2)(r);
    assert.equal(r.baseModel, 'distilbert-base-uncased');
    assert.deepEqual(r.extras.map((t) => t.name).sort(), ['base_model.model.classifier.bias', 'base_model.model.classifier.weight', 'base_model.model.pre_classifier.bias', 'base_model.model.pre_classifier.weight']);
  },
  'peft-dayanidhi04__emotion-classification-distilbert-lora': (r) => {
    adapter('peft', 12, 8, 2)(r);
    assert.ok(r.warnings.some((w) => /unknown field "(monteclora_config|use_bdlora)"/.test(w)) === false, 'known PEFT fields are not "unknown"');
  },
  'peft-Yairama__alpaca-miner__LFS_POINTER_WEIGHTS': (r) => {
    rejected(/adapter_model\.bin\.LFS_POINTER\.txt is a Git LFS pointer to a 16822989-byte object/)(r);
    assert.equal(r.baseModel, 'decapoda-research/llama-7b-hf');
    assert.equal((r.config as Record<string, unknown>).r, 8);
  },
  'peft-abrhaleyarefaine1997__gpt2-tigrinya-lora': (r) => {
    adapter('peft', 36, 8, 4)(r);
    assert.equal(r.baseModel, 'gpt2');
    assert.equal((r.config as Record<string, unknown>).fan_in_fan_out, true);
    assert.deepEqual(r.modules.find((m) => m.name === 'transformer.h.0.attn.c_attn')!.deltaShape, [2304, 768]);
  },
  'peft-anirudh-ak__peft-gpt2': (r) => {
    adapter('peft', 12, 8, 1)(r);
    assert.deepEqual(r.extras.map((t) => t.name), ['base_model.model.score.weight']);
  },
  'promptfoo__modelaudit/script_injection.safetensors': (r) => {
    notAdapter(r);
    assert.equal(r.metadata.html_description, "<script>alert('XSS')</script>");
  },
  'promptfoo__modelaudit/multiple_patterns.safetensors': (r) => {
    notAdapter(r);
    assert.match(r.metadata.shell_hook, /^rm -rf/);
  },
  'promptfoo__modelaudit/safe_model.safetensors': notAdapter,
  'wellCh4n__pokemon-diffusers/pytorch_lora_weights.safetensors': (r) => {
    adapter('diffusers-legacy', 128, 4, 1)(r);
    assert.deepEqual(r.modules.find((m) => m.name.endsWith('down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora'))!.deltaShape, [320, 320]);
  },
};

describe('interop: real-world adapter corpus', function () {
  this.timeout(60000);
  before(function () {
    if (!present) {
      console.log(`    (real-world corpus not found at ${REAL_WORLD}: skipping; it is read from the shared fixtures, never committed)`);
      this.skip();
    }
  });

  for (const [rel, check] of Object.entries(CASES)) {
    it(rel, async () => check(await inspect(rel)));
  }

  it('every safetensors sample and upstream edge-case vector is read or rejected, as its MANIFEST says', async () => {
    const dir = path.join(REAL_WORLD, 'safetensors-upstream-vectors');
    const manifest = fs.readFileSync(path.join(dir, 'MANIFEST.txt'), 'utf8');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
    assert.ok(files.length >= 18);
    // The reason each malformed vector is refused (MANIFEST.txt names the reference implementation's error).
    const why: Record<string, RegExp> = {
      bad_trailing_bytes_polyglot: /34 unexplained trailing bytes/,
      bad_data_2_bytes_short: /need 16 bytes of data but the file has only 14/,
      bad_header_len_huge: /header length prefix is \d+ bytes, more than the \d+-byte limit/,
      bad_empty_file: /valid safetensors file: 0 bytes, but the format starts with an 8-byte header length/,
      bad_header_len_exceeds_file: /header length prefix says 60 bytes, but the file has only 0/,
      bad_header_not_utf8: /header is not valid UTF-8/,
      bad_header_not_json: /header is not valid JSON/,
      bad_offsets_vs_shape: /tensor "test": I32 \[2, 2\] needs 16 bytes, but data_offsets \[0, 4\] give 4/,
      bad_shape_overflow_u64: /tensor "test": shape\[1\] = \d+ is too large/,
      bad_nbytes_overflow: /tensor "test": shape\[1\] = \d+ is too large/,
      bad_overlapping_offsets_json_attack: /data_offsets \[0, 16\] overlaps/,
      bad_lying_offsets_4MiB_claimed_1_byte_present: /need 4194304 bytes of data but the file has only 1/,
    };
    for (const f of files) {
      assert.ok(manifest.includes(f), `${f} in MANIFEST.txt`);
      const r = await inspect(`safetensors-upstream-vectors/${f}`);
      if (f.startsWith('valid_')) notAdapter(r);
      else {
        const expected = why[f.replace(/\.safetensors$/, '')];
        assert.ok(expected, `${f}: no expected reason listed in this test`);
        rejected(expected)(r);
      }
    }
    for (const f of fs.readdirSync(path.join(REAL_WORLD, 'safetensors-samples')).filter((x) => x.endsWith('.safetensors'))) {
      const r = await inspect(`safetensors-samples/${f}`);
      notAdapter(r);
      assert.equal(r.metadata.test, 'a');
    }
  });

  it('covers every file listed in PROVENANCE.txt', () => {
    const listed = fs.readFileSync(path.join(REAL_WORLD, 'PROVENANCE.txt'), 'utf8').split('\n').filter((l) => l.includes(' | ')).map((l) => l.split(' | ')[0]).filter((p) => p.includes('/') && !p.includes('*'));
    const covered = Object.keys(CASES);
    for (const p of listed) {
      if (p.startsWith('safetensors-samples/') || p.startsWith('safetensors-upstream-vectors/')) continue;
      assert.ok(covered.some((c) => p === c || p.startsWith(`${c}/`)), `${p} has a check`);
    }
  });

  it('ΔW of the first module of every real adapter is finite, of the reported shape, and its norm matches the factors', async () => {
    const rels = [
      'KohakuBlueleaf__LyCORIS/smart_falcon_4_lokr.safetensors',
      'cloneofsimo__lora/lora_disney.safetensors',
      'MathieuNlp__Sam_LoRA/lora_rank2.safetensors',
      'ml-explore__mlx-examples',
      'peft-abrhaleyarefaine1997__gpt2-tigrinya-lora',
      'wellCh4n__pokemon-diffusers/pytorch_lora_weights.safetensors',
    ];
    for (const rel of rels) {
      const input = await loadInspectInput(path.join(REAL_WORLD, rel), { readValues: true });
      const r = inspectAdapter(input);
      const m = r.modules[0];
      const d = deltaW(r.format as never, m, (n) => input.weights!.values!(n)!);
      assert.deepEqual(d.shape, m.deltaShape, rel);
      assert.equal(d.data.length, m.deltaShape.reduce((a, b) => a * b, 1), rel);
      assert.ok(d.data.every((v) => Number.isFinite(v)), `${rel}: finite ΔW`);
      let sq = 0;
      for (const v of d.data) sq += v * v;
      assert.ok(m.deltaNorm !== undefined && Math.abs(Math.sqrt(sq) - m.deltaNorm) <= 1e-3 * m.deltaNorm + 1e-9, `${rel}: ‖ΔW‖ ${Math.sqrt(sq)} vs ${m.deltaNorm}`);
    }
  });

  it('header-only inspection agrees with the full read on structure, and computes ΔW from real factors', async () => {
    const rel = 'peft-anirudh-ak__peft-gpt2';
    const full = await inspect(rel, true);
    const header = await inspect(rel, false);
    assert.equal(header.valuesChecked, false);
    assert.deepEqual(header.modules.map((m) => [m.name, m.rank, m.scale]), full.modules.map((m) => [m.name, m.rank, m.scale]));
    const input = await loadInspectInput(path.join(REAL_WORLD, rel), { readValues: true });
    const m = full.modules[0];
    const d = deltaW('peft', m, (n) => input.weights!.values!(n)!);
    assert.deepEqual(d.shape, [2304, 768]);
    const A = input.weights!.values!(m.tensors.lora_A.name)!;
    const B = input.weights!.values!(m.tensors.lora_B.name)!;
    let s = 0;
    for (let k = 0; k < 8; k++) s += B[5 * 8 + k] * A[k * 768 + 7];
    assert.ok(Math.abs(d.data[5 * 768 + 7] - s * m.scale) < 1e-6);
  });
});
