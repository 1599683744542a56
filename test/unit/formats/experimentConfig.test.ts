import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import { parse as parseJsonc } from 'jsonc-parser';
import { parse as parseYaml } from 'yaml';
import {
  allowedKeysAt,
  closestName,
  findNodeAtPath,
  formatPath,
  parseExperimentConfig,
  parsePathString,
  pathAtOffset,
  resolveConfigDefaults,
  schemaInfoAt,
  EXPERIMENT_KINDS,
} from '../../../src/formats/experimentConfig';
import { EXPERIMENT_SCHEMA, editorSchema } from '../../../src/formats/experimentSchema';
import { FormatError } from '../../../src/formats/errors';
import type { ExperimentConfig, ExperimentKind } from '../../../src/formats/experimentTypes';

const ROOT = path.resolve(__dirname, '../../..');
const SCHEMA_FILE = path.join(ROOT, 'schemas/experiment.schema.json');
const FIXTURES = path.join(ROOT, 'test/fixtures/formats/configs');
const EXAMPLES = path.join(ROOT, 'examples');

function listConfigs(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listConfigs(full));
    else if (/\.lora\.(json|ya?ml)$/.test(e.name)) out.push(full);
  }
  return out.sort();
}

// The schema file as the editor sees it, compiled by a separate Ajv (not the parser's instance).
function editorValidator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')));
}

function plainData(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  return /\.ya?ml$/.test(file) ? parseYaml(text) : parseJsonc(text, [], { allowTrailingComma: true });
}

const parseFile = (file: string) => parseExperimentConfig(fs.readFileSync(file, 'utf8'), file);

describe('experiment config: schema file', () => {
  it('schemas/experiment.editor.schema.json is generated too: documentation and suggestions, no validation (each error once in Problems)', () => {
    const file = path.join(ROOT, 'schemas/experiment.editor.schema.json');
    const editor = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(editor, JSON.parse(JSON.stringify(editorSchema())));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(editor);
    // Configs the parser rejects are accepted by the editor's copy: only the parser reports them.
    const bad = { kind: 'low-rank-recovery', lora: { r: 0, alpah: 4, scaling: 'sideways' }, training: { steps: 'many' }, extra: true };
    assert.ok(parseExperimentConfig(JSON.stringify(bad), 'bad.lora.json').issues.length >= 4);
    assert.ok(validate(bad), JSON.stringify(validate.errors));
    assert.ok(validate({ kind: 'low-rank-recovery', lora: { r: [1, 2, 4, 8] } }), 'a sweep list is not flagged');
    // What the editor needs is kept: descriptions, defaults, enum values as suggestions, the kind-specific model sections.
    assert.match(editor.definitions.lora.properties.r.description, /rank/i);
    assert.equal(editor.definitions.lora.properties.r.type, undefined);
    assert.deepEqual(editor.properties.kind.examples, [...EXPERIMENT_KINDS]);
    assert.equal(editor.allOf.length, 3);
    assert.deepEqual(editor.allOf[0].if, { properties: { kind: { const: 'low-rank-recovery' } }, required: ['kind'] });
    // package.json gives the editor this copy.
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.deepEqual(pkg.contributes.jsonValidation.map((v: { url: string }) => v.url), ['./schemas/experiment.editor.schema.json']);
    assert.deepEqual(pkg.contributes.yamlValidation.map((v: { url: string }) => v.url), ['./schemas/experiment.editor.schema.json']);
  });

  it('schemas/experiment.schema.json is generated from src/formats/experimentSchema.ts (run `npm run schema`)', () => {
    assert.deepEqual(JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')), JSON.parse(JSON.stringify(EXPERIMENT_SCHEMA)));
  });

  it('is draft-07 and compiles in strict mode', () => {
    assert.equal(EXPERIMENT_SCHEMA.$schema, 'http://json-schema.org/draft-07/schema#');
    const ajv = new Ajv({ strict: true });
    ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' });
    ajv.compile(EXPERIMENT_SCHEMA);
  });

  it('documents every property (the editor hover text)', () => {
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, where: string) => {
      for (const [k, v] of Object.entries((node.properties as Record<string, Record<string, unknown>>) ?? {})) {
        const p = where ? `${where}.${k}` : k;
        if (!v.$ref && (typeof v.description !== 'string' || typeof v.markdownDescription !== 'string')) missing.push(p);
        walk(v, p);
      }
    };
    walk(EXPERIMENT_SCHEMA as unknown as Record<string, unknown>, '');
    for (const [name, def] of Object.entries(EXPERIMENT_SCHEMA.definitions)) {
      if (typeof (def as { description?: unknown }).description !== 'string') missing.push(`#/definitions/${name}`);
      walk(def as Record<string, unknown>, name);
    }
    assert.deepEqual(missing, []);
  });

  it('every schema `default` is what resolveConfigDefaults fills in', () => {
    const sections: Record<string, string> = { lora: 'lora', optimizer: 'optimizer', schedule: 'schedule', training: 'training' };
    const modelDefs: Record<string, ExperimentKind> = {
      lowRankRecoveryModel: 'low-rank-recovery',
      attentionAdaptationModel: 'attention-adaptation',
      causalLmModel: 'causal-lm',
    };
    const minimal = (kind: ExperimentKind) =>
      resolveConfigDefaults(kind === 'causal-lm' ? { kind, model: { modelPath: 'm', dataset: { path: 'd.txt' } } } : { kind }, 'x.lora.json');
    let checked = 0;
    const check = (props: Record<string, { default?: unknown; properties?: unknown }>, prefix: string, kinds: ExperimentKind[]) => {
      for (const [key, prop] of Object.entries(props)) {
        if (prop.properties) check(prop.properties as typeof props, `${prefix}.${key}`, kinds);
        if (!('default' in prop)) continue;
        for (const kind of kinds) {
          const value = parsePathString(`${prefix}.${key}`).reduce<unknown>((o, s) => (o as Record<string, unknown>)[s], minimal(kind));
          assert.deepEqual(value, prop.default, `${prefix}.${key} for ${kind}`);
          checked++;
        }
      }
    };
    for (const [def, section] of Object.entries(sections)) {
      check((EXPERIMENT_SCHEMA.definitions as unknown as Record<string, { properties: never }>)[def].properties, section, [...EXPERIMENT_KINDS]);
    }
    for (const [def, kind] of Object.entries(modelDefs)) {
      check((EXPERIMENT_SCHEMA.definitions as unknown as Record<string, { properties: never }>)[def].properties, 'model', [kind]);
    }
    assert.equal(minimal('low-rank-recovery').outputDir, EXPERIMENT_SCHEMA.properties.outputDir.default);
    assert.ok(checked > 30, `checked ${checked} defaults`);
  });
});

describe('experiment config: fixtures (schema + parser)', () => {
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Record<string, string[]>;
  const validate = editorValidator();
  // Rejected by the parser only: cross-field rules the schema cannot express, and duplicate keys.
  const PARSER_ONLY = new Set(['invalid/cross-field-low-rank.lora.json', 'invalid/duplicate-key.lora.json', 'invalid/causal-lm-train-bias.lora.json']);
  const SYNTAX = /syntax|duplicate|empty/;
  const files = listConfigs(FIXTURES).map((f) => path.relative(FIXTURES, f));
  it('expected.json covers every fixture', () => assert.deepEqual(Object.keys(expected).sort(), [...files].sort()));
  for (const rel of files) {
    it(rel, () => {
      const file = path.join(FIXTURES, rel);
      const result = parseExperimentConfig(fs.readFileSync(file, 'utf8'), path.basename(file));
      const got = result.issues.map((i) => `${i.severity} ${i.path} @${i.line}:${i.column}`);
      const want = expected[rel].map((e) => e.split(' ~ ')[0]);
      assert.deepEqual(got, want);
      result.issues.forEach((issue, k) => assert.ok(issue.message.includes(expected[rel][k].split(' ~ ')[1]), issue.message));
      if (rel.startsWith('valid/')) {
        assert.ok(result.config, 'a valid file gives a config');
        assert.ok(validate(plainData(file)), `the editor schema accepts it: ${JSON.stringify(validate.errors)}`);
      } else {
        assert.equal(result.config, undefined, 'an invalid file gives no config');
        if (!SYNTAX.test(rel)) {
          assert.equal(validate(plainData(file)), PARSER_ONLY.has(rel), 'the editor schema agrees where it can');
        }
      }
    });
  }
});

describe('experiment config: examples', () => {
  const validate = editorValidator();
  const files = listConfigs(EXAMPLES);
  it('there are the quick start (JSON + YAML), attention, a 4-file rank sweep and causal-lm examples', () => {
    const rel = files.map((f) => path.relative(EXAMPLES, f));
    for (const f of ['low-rank-recovery.lora.json', 'low-rank-recovery.lora.yaml', 'attention-adaptation.lora.json', 'tiny-gpt2.lora.json']) {
      assert.ok(rel.includes(f), f);
    }
    assert.equal(rel.filter((f) => f.startsWith('rank-sweep/')).length, 4);
  });
  for (const file of files) {
    it(`${path.relative(ROOT, file)}: schema and parser accept it with no warning; resolved config round-trips`, () => {
      assert.ok(validate(plainData(file)), JSON.stringify(validate.errors));
      const r = parseFile(file);
      assert.deepEqual(r.issues, []);
      assert.ok(r.config);
      // The resolved config saved with a run (config.json) is itself a valid experiment file (it spells out
      // every field, so it may draw "ignored" warnings, never errors).
      const again = parseExperimentConfig(JSON.stringify(r.config, null, 2), 'config.json');
      assert.deepEqual(again.issues.filter((i) => i.severity === 'error'), []);
      assert.deepEqual(again.config, r.config);
      if (r.config.model.kind === 'causal-lm') {
        const dir = path.dirname(file);
        assert.ok(fs.existsSync(path.join(dir, r.config.model.modelPath, 'config.json')), `model folder ${r.config.model.modelPath}`);
        assert.ok(fs.existsSync(path.join(dir, r.config.model.dataset.path)), `dataset ${r.config.model.dataset.path}`);
      }
    });
  }
  it('the YAML quick start is the JSON one', () => {
    const json = parseFile(path.join(EXAMPLES, 'low-rank-recovery.lora.json')).config!;
    const yaml = parseFile(path.join(EXAMPLES, 'low-rank-recovery.lora.yaml')).config!;
    assert.deepEqual({ ...yaml, name: json.name }, json);
  });
  it('the rank sweep differs only in r, alpha and name', () => {
    const configs = files.filter((f) => f.includes(`${path.sep}rank-sweep${path.sep}`)).map((f) => parseFile(f).config!);
    assert.deepEqual(configs.map((c) => c.lora.r).sort((a, b) => a - b), [1, 2, 4, 8]);
    const strip = (c: ExperimentConfig) => ({ ...c, name: '', lora: { ...c.lora, r: 0, alpha: 0 } });
    for (const c of configs) assert.deepEqual(strip(c), strip(configs[0]));
    assert.equal(configs[0].model.kind === 'low-rank-recovery' && configs[0].model.trueRank, 4);
  });
});

describe('experiment config: defaults and rules', () => {
  it('a minimal file resolves to the documented per-kind defaults', () => {
    const lr = parseExperimentConfig('{"kind": "low-rank-recovery"}', '/a/b/my-exp.lora.json').config!;
    assert.equal(lr.name, 'my-exp');
    assert.deepEqual(lr.model, { kind: 'low-rank-recovery', inFeatures: 64, outFeatures: 64, trueRank: 4, updateScale: 0.5, noise: 0 });
    assert.deepEqual(lr.lora, { r: 4, alpha: 4, scaling: 'standard', dropout: 0, init: 'gaussian', targetModules: ['linear'], trainBias: false, useDora: false });
    assert.deepEqual(lr.training, { steps: 300, batchSize: 64, seed: 0, evalEvery: 30, evalBatches: 4, checkpointEvery: 30, logEvery: 1, keepCheckpoints: 10, gradientCheckpointing: false });
    const lm = parseExperimentConfig('kind: causal-lm\nmodel: {modelPath: m, dataset: {path: t.txt, evalFraction: 0}}\n', 'lm.lora.yaml').config!;
    assert.equal(lm.name, 'lm');
    assert.deepEqual(lm.lora.targetModules, [], 'causal-lm: the model type decides (PEFT defaults)');
    assert.equal(lm.lora.init, 'kaiming-uniform');
    assert.deepEqual([lm.optimizer.name, lm.optimizer.weightDecay, lm.optimizer.gradClip, lm.schedule.name], ['adamw', 0.01, 1, 'cosine']);
    assert.equal(lm.training.evalEvery, 0, 'no held-out text: evaluation is off by default');
    const att = parseExperimentConfig('{"kind": "attention-adaptation", "model": {"seqLen": 5}, "lora": {"r": 2, "alpha": 1}}', 'a.lora.json').config!;
    assert.equal(att.model.kind === 'attention-adaptation' && att.model.kvSeqLen, 5, 'kvSeqLen defaults to seqLen');
    assert.equal(att.lora.alpha, 1);
    assert.deepEqual(att.lora.targetModules, ['q', 'k', 'v']);
  });

  it('resolveConfigDefaults refuses an unknown kind', () => {
    assert.throws(() => resolveConfigDefaults({ kind: 'nope' }, 'f.lora.json'), (e: unknown) => FormatError.is(e, 'invalid-config') && /f\.lora\.json: `kind` must be one of/.test(e.message));
  });

  it('r = min(d, k) is allowed, r = min(d, k) + 1 is not', () => {
    const mk = (r: number) => parseExperimentConfig(JSON.stringify({ kind: 'low-rank-recovery', model: { inFeatures: 8, outFeatures: 6, trueRank: 6 }, lora: { r } }), 'x.lora.json');
    assert.ok(mk(6).config);
    assert.deepEqual(mk(7).issues.map((i) => i.path), ['lora.r']);
  });

  it('reports every problem at once, in text order, with 1-based line/column and 0-based offsets', () => {
    const text = '{\r\n  "kind": "low-rank-recovery",\r\n  "lora": { "r": -1, "dropout": 2 }\r\n}';
    const r = parseExperimentConfig(text, 'crlf.lora.json');
    assert.deepEqual(
      r.issues.map((i) => [i.path, i.line, i.column, text.slice(i.offset, i.offset + i.length)]),
      [
        ['lora.r', 3, 18, '-1'],
        ['lora.dropout', 3, 33, '2'],
      ],
    );
  });

  it('lora.useDora: a boolean, default false, for causal-lm only', () => {
    const lm = (lora: string) => parseExperimentConfig(`kind: causal-lm\nmodel: {modelPath: m, dataset: {path: t.txt}}\nlora: ${lora}\n`, 'lm.lora.yaml');
    assert.equal(lm('{r: 2}').config!.lora.useDora, false);
    const on = lm('{r: 2, useDora: true}');
    assert.deepEqual(on.issues, []);
    assert.equal(on.config!.lora.useDora, true);
    assert.deepEqual(
      lm('{useDora: "yes"}').issues.map((i) => [i.path, i.message]),
      [['lora.useDora', '`lora.useDora` must be true or false, got the string "yes"']],
    );
    for (const kind of ['low-rank-recovery', 'attention-adaptation']) {
      const text = `{"kind": "${kind}", "lora": {"useDora": true}}`;
      const r = parseExperimentConfig(text, 'x.lora.json');
      assert.equal(r.config, undefined);
      assert.deepEqual(r.issues.map((i) => [i.severity, i.path, i.line, i.column]), [['error', 'lora.useDora', 1, text.indexOf('true') + 1]]);
      assert.match(r.issues[0].message, new RegExp(`\`lora.useDora\` is supported by kind "causal-lm" only .*not by "${kind}"`));
    }
    assert.equal(parseExperimentConfig('{"kind": "low-rank-recovery", "lora": {"useDora": false}}', 'x.lora.json').issues.length, 0);
  });

  it('warnings alone still give a config', () => {
    const r = parseExperimentConfig('{"kind": "low-rank-recovery", "optimizer": {"name": "sgd", "beta1": 0.5}}', 'x.lora.json');
    assert.ok(r.config);
    assert.deepEqual(r.issues.map((i) => [i.severity, i.path]), [['warning', 'optimizer.beta1']]);
  });

  it('YAML: non-finite numbers and YAML 1.1 booleans are rejected with a clear message', () => {
    const r = parseExperimentConfig('kind: low-rank-recovery\noptimizer:\n  lr: .nan\nlora:\n  trainBias: yes\n', 'y.lora.yaml');
    assert.deepEqual(
      r.issues.map((i) => [i.path, i.line, i.column, i.message]),
      [
        ['optimizer.lr', 3, 7, '`optimizer.lr` must be a finite number, got NaN'],
        ['lora.trainBias', 5, 14, '`lora.trainBias` must be true or false, got the string "yes"'],
      ],
    );
  });

  it('closestName suggests near misses only', () => {
    assert.equal(closestName('lerning_rate', ['lr', 'learningRate']), 'learningRate');
    assert.equal(closestName('targetModule', ['targetModules', 'trainBias']), 'targetModules');
    assert.equal(closestName('zzz', ['r', 'alpha', 'scaling']), undefined);
  });
});

describe('experiment config: positions for editors', () => {
  const json = '{\n  // c\n  "kind": "low-rank-recovery",\n  "lora": { "r": 4, "targetModules": ["a", "b"] }\n}\n';
  const yaml = 'kind: low-rank-recovery\nlora:\n  r: 4\n  targetModules:\n    - a\n    - b\n';
  const slice = (text: string, r: { offset: number; length: number } | undefined) => (r ? text.slice(r.offset, r.offset + r.length) : undefined);

  it('findNodeAtPath gives value and key ranges (JSON)', () => {
    assert.equal(slice(json, findNodeAtPath(json, 'x.lora.json', ['lora', 'r'])), '4');
    assert.equal(slice(json, findNodeAtPath(json, 'x.lora.json', 'lora.targetModules[1]')), '"b"');
    assert.equal(slice(json, findNodeAtPath(json, 'x.lora.json', ['lora', 'r'], 'key')), '"r"');
    assert.equal(findNodeAtPath(json, 'x.lora.json', ['lora', 'alpha']), undefined);
  });
  it('findNodeAtPath gives value and key ranges (YAML)', () => {
    assert.equal(slice(yaml, findNodeAtPath(yaml, 'x.lora.yaml', ['lora', 'r'])), '4');
    assert.equal(slice(yaml, findNodeAtPath(yaml, 'x.lora.yaml', 'lora.targetModules[1]')), 'b');
    assert.equal(slice(yaml, findNodeAtPath(yaml, 'x.lora.yaml', ['lora', 'targetModules'], 'key')), 'targetModules');
    assert.equal(slice(yaml, findNodeAtPath(yaml, 'x.lora.yaml', ['kind'])), 'low-rank-recovery');
    assert.equal(findNodeAtPath(yaml, 'x.lora.yaml', ['optimizer']), undefined);
  });
  it('pathAtOffset finds the key or value under the cursor (JSON and YAML)', () => {
    assert.deepEqual(pathAtOffset(json, 'x.lora.json', json.indexOf('"r"') + 1), ['lora', 'r']);
    assert.deepEqual(pathAtOffset(json, 'x.lora.json', json.indexOf('4')), ['lora', 'r']);
    assert.deepEqual(pathAtOffset(json, 'x.lora.json', json.indexOf('"b"') + 1), ['lora', 'targetModules', 1]);
    assert.deepEqual(pathAtOffset(yaml, 'x.lora.yaml', yaml.indexOf('r: 4')), ['lora', 'r']);
    assert.deepEqual(pathAtOffset(yaml, 'x.lora.yaml', yaml.indexOf('4')), ['lora', 'r']);
    assert.deepEqual(pathAtOffset(yaml, 'x.lora.yaml', yaml.indexOf('- b') + 2), ['lora', 'targetModules', 1]);
    assert.deepEqual(pathAtOffset(yaml, 'x.lora.yaml', yaml.indexOf('kind') + 1), ['kind']);
  });
  it('schemaInfoAt and allowedKeysAt read the schema for hovers and completions', () => {
    assert.match(schemaInfoAt(['lora', 'alpha'])!.description!, /α\/r/);
    assert.equal(schemaInfoAt(['lora', 'r'])!.default, 4);
    assert.equal(schemaInfoAt(['lora', 'targetModules', 0])!.type, 'string');
    assert.equal(schemaInfoAt(['model', 'trueRank'], 'low-rank-recovery')!.default, 4);
    assert.equal(schemaInfoAt(['model', 'trueRank'], 'attention-adaptation')!.default, 2);
    assert.deepEqual(schemaInfoAt(['optimizer', 'name'])!.enum, ['sgd', 'adam', 'adamw']);
    assert.equal(schemaInfoAt(['lora', 'nope']), undefined);
    assert.deepEqual(allowedKeysAt(['model'], 'causal-lm'), ['kind', 'modelPath', 'dataset']);
  });
  it('formatPath and parsePathString are inverses', () => {
    for (const p of [['lora', 'targetModules', 1], ['kind'], [], ['model', 'dataset', 'path']] as (string | number)[][]) {
      assert.deepEqual(parsePathString(formatPath(p)), p);
    }
  });
});

describe('experiment config: sweeps (a scalar field given as a list)', () => {
  const base = { kind: 'low-rank-recovery', name: 'rec', model: { inFeatures: 16, outFeatures: 16, trueRank: 2 } };

  it('lora.r: [1, 2, 4, 8] expands to four runs named after their value, in list order', () => {
    const r = parseExperimentConfig(JSON.stringify({ ...base, lora: { r: [1, 2, 4, 8], alpha: 8 } }), 'rec.lora.json');
    assert.deepEqual(r.issues, []);
    assert.ok(r.sweep);
    assert.deepEqual(
      r.sweep.map((v) => [v.label, v.config.name, v.config.lora.r, v.config.lora.alpha]),
      [
        ['lora.r = 1', 'rec-r1', 1, 8],
        ['lora.r = 2', 'rec-r2', 2, 8],
        ['lora.r = 4', 'rec-r4', 4, 8],
        ['lora.r = 8', 'rec-r8', 8, 8],
      ],
    );
    assert.equal(r.config?.lora.r, 1);
  });

  it('two lists make every combination (YAML too); lists the schema expects (targetModules) are not sweeps', () => {
    const text = 'kind: attention-adaptation\nname: att\nlora:\n  r: [2, 4]\n  targetModules: [q, v]\noptimizer:\n  name: [adam, sgd]\n';
    const r = parseExperimentConfig(text, 'att.lora.yaml');
    assert.deepEqual(r.issues.filter((i) => i.severity === 'error'), []);
    assert.deepEqual(
      r.sweep?.map((v) => [v.config.name, v.config.lora.r, v.config.optimizer.name, v.config.lora.targetModules.join(',')]),
      [
        ['att-r2-adam', 2, 'adam', 'q,v'],
        ['att-r2-sgd', 2, 'sgd', 'q,v'],
        ['att-r4-adam', 4, 'adam', 'q,v'],
        ['att-r4-sgd', 4, 'sgd', 'q,v'],
      ],
    );
    const plain = parseExperimentConfig(JSON.stringify({ ...base, lora: { r: 2 } }), 'p.lora.json');
    assert.equal(plain.sweep, undefined);
    assert.ok(plain.config);
  });

  it('a bad value in a list is reported at that element, once; an empty list and a huge sweep are errors', () => {
    const text = JSON.stringify({ ...base, lora: { r: [2, 0, 4] }, optimizer: { lr: [0.01, 0.1] } });
    const r = parseExperimentConfig(text, 'bad.lora.json');
    assert.equal(r.config, undefined);
    const errors = r.issues.filter((i) => i.severity === 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].path, 'lora.r[1]');
    assert.match(errors[0].message, /`lora\.r` must be a positive integer, got 0/);
    assert.equal(text.slice(errors[0].offset, errors[0].offset + errors[0].length), '0');
    const empty = parseExperimentConfig(JSON.stringify({ ...base, lora: { r: [] } }), 'e.lora.json');
    assert.match(empty.issues[0].message, /`lora\.r` is an empty list: a sweep needs at least one value/);
    const huge = parseExperimentConfig(JSON.stringify({ ...base, lora: { r: [...Array(10).keys()].map((i) => i + 1) }, training: { seed: [...Array(10).keys()] } }), 'h.lora.json');
    assert.match(huge.issues[0].message, /this sweep makes 100 runs \(`lora\.r` \(10\) × `training\.seed` \(10\)\); at most 64 runs per config/);
  });
});
