// Experiment configs are checked against size limits before anything is allocated (the schema's
// `maximum`s and cross-field tensor sizes), each error naming the field at file:line:col; a UTF-8
// byte order mark is accepted, invalid UTF-8 refused at its position, and a deeply nested file is a
// clear error with its line, not a stack overflow.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeExperimentBytes, firstInvalidUtf8, nestingTooDeep, parseExperimentConfig } from '../../../src/formats/experimentConfig';
import { CONFIG_LIMITS, EXPERIMENT_SCHEMA } from '../../../src/formats/experimentSchema';
import { loadExperimentConfig } from '../../../src/runs/trainRun';
import { RunError } from '../../../src/runs/runErrors';

const ROOT = path.resolve(__dirname, '../../..');

function errorsOf(text: string, file = 'x.lora.json'): string[] {
  const r = parseExperimentConfig(text, file);
  return r.issues.filter((i) => i.severity === 'error').map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
}

const json = (o: unknown) => JSON.stringify(o, null, 2);

describe('experiment config: limits, encodings and nesting', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-limits-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the limits are the schema\'s maximums (in the generated schemas/experiment.schema.json too)', () => {
    const defs = EXPERIMENT_SCHEMA.definitions;
    const max = (node: object) => (node as { maximum?: number }).maximum;
    assert.equal(max(defs.training.properties.batchSize), CONFIG_LIMITS.batchSize);
    assert.equal(max(defs.training.properties.steps), Number.MAX_SAFE_INTEGER);
    assert.equal(max(defs.lowRankRecoveryModel.properties.inFeatures), CONFIG_LIMITS.features);
    assert.equal(max(defs.attentionAdaptationModel.properties.seqLen), CONFIG_LIMITS.attentionSeqLen);
    assert.equal(max(defs.causalLmModel.properties.dataset.properties.seqLen), CONFIG_LIMITS.lmSeqLen);
    const file = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas/experiment.schema.json'), 'utf8'));
    assert.equal(file.definitions.training.properties.batchSize.maximum, CONFIG_LIMITS.batchSize);
    assert.equal(file.definitions.training.properties.steps.maximum, 9007199254740991);
  });

  it('batchSize 1e9, in/out features 1e5, attention seqLen 1e5, steps above 2^53: the field, the limit, line:col', () => {
    const e = errorsOf(json({ kind: 'low-rank-recovery', model: { inFeatures: 100000, outFeatures: 100000 }, training: { batchSize: 1e9, steps: 2 ** 53 + 2 } }));
    assert.deepEqual(e, [
      '4:19 model.inFeatures: `model.inFeatures` must be ≤ 8192, got 100000',
      '5:20 model.outFeatures: `model.outFeatures` must be ≤ 8192, got 100000',
      '8:18 training.batchSize: `training.batchSize` must be ≤ 65536, got 1000000000',
      '9:14 training.steps: `training.steps` must be ≤ 9007199254740991, got 9007199254740994',
    ]);
    const a = errorsOf(json({ kind: 'attention-adaptation', model: { seqLen: 100000, kvSeqLen: 100000, embedDim: 5000 } }));
    assert.ok(a.some((x) => x.startsWith('4:15 model.seqLen: `model.seqLen` must be ≤ 4096, got 100000')), a.join('\n'));
    assert.ok(a.some((x) => x.includes('`model.kvSeqLen` must be ≤ 4096')), a.join('\n'));
    assert.ok(a.some((x) => x.includes('`model.embedDim` must be ≤ 4096')), a.join('\n'));
    // At the limits, alone: fine.
    assert.deepEqual(errorsOf(json({ kind: 'low-rank-recovery', model: { inFeatures: 8192, outFeatures: 8192 }, training: { batchSize: 2, steps: Number.MAX_SAFE_INTEGER, checkpointEvery: 1, evalEvery: 1 } })), []);
    // YAML: the same rule, at the YAML position.
    assert.deepEqual(errorsOf('kind: low-rank-recovery\ntraining:\n  batchSize: 1000000000\n', 'x.lora.yaml'), ['3:14 training.batchSize: `training.batchSize` must be ≤ 65536, got 1000000000']);
  });

  it('sizes across fields: a tensor over 2^28 elements is refused, naming the fields, though each is within its limit', () => {
    const lrr = errorsOf(json({ kind: 'low-rank-recovery', model: { inFeatures: 8192 }, training: { batchSize: 65536 } }));
    assert.equal(lrr.length, 1, lrr.join('\n'));
    assert.match(lrr[0], /^7:18 training\.batchSize: `training\.batchSize` × max\(inFeatures, outFeatures\) = 536,870,912 values per batch, more than one tensor may hold \(2\^28 = 268,435,456\)/);
    const att = errorsOf(json({ kind: 'attention-adaptation', model: { seqLen: 4096, kvSeqLen: 4096 }, training: { batchSize: 64 } }));
    assert.equal(att.length, 1, att.join('\n'));
    assert.match(att[0], /^4:15 model\.seqLen: .*= 1,073,741,824 attention scores per step/);
    const lm = errorsOf(json({ kind: 'causal-lm', model: { modelPath: 'm', dataset: { path: 'd.txt', seqLen: 2048 } }, training: { batchSize: 1024 } }));
    assert.equal(lm.length, 1, lm.join('\n'));
    assert.match(lm[0], /training\.batchSize: `training\.batchSize` × `model\.dataset\.seqLen` = 2,097,152 tokens per step/);
  });

  it('loadExperimentConfig prints file:line:col for a limit, accepts a BOM, refuses invalid UTF-8 at its line and column', () => {
    const big = path.join(tmp, 'big.lora.json');
    fs.writeFileSync(big, json({ kind: 'low-rank-recovery', training: { batchSize: 1e9 } }));
    assert.throws(() => loadExperimentConfig(big), (e: Error) => RunError.is(e, 'config') && e.message.includes(`${big}:4:18: error: \`training.batchSize\` must be ≤ 65536, got 1000000000`));
    for (const [name, text, line] of [
      ['bom.lora.json', json({ kind: 'low-rank-recovery', training: { steps: 5 } }), 4],
      ['bom.lora.yaml', 'kind: low-rank-recovery\ntraining:\n  steps: 5\n', 3],
    ] as const) {
      const f = path.join(tmp, name);
      fs.writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]));
      assert.equal(loadExperimentConfig(f).config.training.steps, 5, name);
      // The text as an editor hands it over (BOM as U+FEFF) parses too, positions unshifted.
      const r = parseExperimentConfig(`\ufeff${text.replace('5', '0')}`, name);
      assert.deepEqual(r.issues.map((i) => `${i.line}:${i.path}`), [`${line}:training.steps`], name);
    }
    const bad = path.join(tmp, 'latin1.lora.json');
    fs.writeFileSync(bad, Buffer.concat([Buffer.from('{\n  "kind": "low-rank-recovery",\n  "name": "caf'), Buffer.from([0xe9]), Buffer.from('"\n}\n')]));
    assert.throws(() => loadExperimentConfig(bad), (e: Error) => RunError.is(e, 'config') && e.message.includes(`${bad}:3:15: error: not valid UTF-8 at byte 47 (bytes e9 22 0a 7d): save the file as UTF-8`));
  });

  it('firstInvalidUtf8 agrees with a strict decoder on seeded random and edge-case byte strings', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const cases: number[][] = [
      [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xe2, 0x82], [0xf0, 0x9f, 0x98, 0x80], [0xef, 0xbb, 0xbf, 0x41],
    ];
    for (let n = 0; n < 3000; n++) cases.push(Array.from({ length: 1 + (n % 9) }, () => (n % 3 ? next() | 0x80 : next())));
    for (const c of cases) {
      const bytes = Uint8Array.from(c);
      let valid = true;
      try {
        strict.decode(bytes);
      } catch {
        valid = false;
      }
      const bad = firstInvalidUtf8(bytes);
      assert.equal(bad === undefined, valid, `${Buffer.from(bytes).toString('hex')}: firstInvalidUtf8 ${bad}`);
      if (bad !== undefined) {
        // Everything before the reported byte is valid on its own.
        strict.decode(bytes.subarray(0, bad));
      }
    }
    assert.equal(decodeExperimentBytes(Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])).text, '{}');
  });

  it('a 10,000-deep file (JSON, YAML flow, YAML block, YAML "- - -") is one clear error with its line, no stack overflow', () => {
    const deep = 10_000;
    const cases: [string, string, number][] = [
      ['deep.lora.json', `{"kind": "low-rank-recovery",\n "x": ${'['.repeat(deep)}${']'.repeat(deep)}}`, 2],
      ['deep.lora.json', `{"kind": "low-rank-recovery",\n "x": ${'{"a":'.repeat(deep)}1${'}'.repeat(deep)}}`, 2],
      ['deep.lora.yaml', `kind: low-rank-recovery\nx: ${'['.repeat(deep)}${']'.repeat(deep)}\n`, 2],
      ['deep.lora.yaml', `kind: low-rank-recovery\nx:\n${Array.from({ length: deep }, (_, i) => `${' '.repeat(i + 1)}a:`).join('\n')} 1\n`, 66],
      ['deep.lora.yaml', `kind: low-rank-recovery\nx:\n  ${'- '.repeat(deep)}1\n`, 3],
    ];
    for (const [name, text, line] of cases) {
      const r = parseExperimentConfig(text, name);
      assert.equal(r.config, undefined);
      assert.equal(r.issues.length, 1, `${name}: ${r.issues.map((i) => i.message).join('; ')}`);
      assert.match(r.issues[0].message, /nested more than 64 levels deep/);
      assert.equal(r.issues[0].line, line, name);
    }
    // Brackets in strings and comments do not count; a block scalar's indented text does not either.
    assert.equal(nestingTooDeep(`{"a": "${'['.repeat(100)}" /* ${'{'.repeat(100)} */}\n// ${'['.repeat(100)}`, false, 64), undefined);
    assert.equal(nestingTooDeep(`name: "${'['.repeat(100)}" # ${'{'.repeat(100)}\nnote: |\n${Array.from({ length: 100 }, (_, i) => ` ${' '.repeat(i)}x`).join('\n')}\nkind: low-rank-recovery\n`, true, 64), undefined);
    assert.equal(nestingTooDeep('{"a": [[1]]}', false, 2), 7);
  });

  it('a YAML list used as a key is an unknown-key issue, with no process warning on stderr (found by the fuzzer)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const r = parseExperimentConfig('kind: low-rank-recovery\n? [a, b]\n: 1\n', 'x.lora.yaml');
      assert.match(r.issues.map((i) => i.message).join('\n'), /unknown key `\[ a, b \]`/);
      await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings, []);
  });

  it('a FIFO as the config file is refused, not waited on', function () {
    if (process.platform === 'win32' || spawnSync('mkfifo', ['--help'], { stdio: 'ignore' }).error) this.skip();
    const fifo = path.join(tmp, 'pipe.lora.json');
    execFileSync('mkfifo', [fifo]);
    try {
      assert.throws(() => loadExperimentConfig(fifo), (e: Error) => RunError.is(e, 'config') && e.message.includes('is a FIFO (named pipe), not a regular file; refused'));
    } finally {
      try {
        fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // nobody was waiting
      }
    }
  });
});
