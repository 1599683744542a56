import * as assert from 'node:assert/strict';
import { parseExperimentConfig } from '../../../src/formats/experimentConfig';
import { configFixes, type ConfigFix } from '../../../src/insight/configFixes';

function apply(text: string, fix: ConfigFix): string {
  let out = text;
  for (const e of [...fix.edits].sort((a, b) => b.offset - a.offset)) out = out.slice(0, e.offset) + e.newText + out.slice(e.offset + e.length);
  return out;
}

function fixesFor(text: string, fileName: string) {
  const { issues } = parseExperimentConfig(text, fileName);
  const unknown = issues.filter((i) => /^unknown key/.test(i.message));
  assert.equal(unknown.length, 1, JSON.stringify(issues));
  return configFixes(text, fileName, unknown[0]);
}

describe('config quick fixes: unknown keys', () => {
  it('JSON: renames to the closest known key (preferred) or removes the key and its comma; both leave a valid config', () => {
    const text = '{\n  "kind": "low-rank-recovery",\n  "lora": {\n    "r": 4,\n    "alpah": 8\n  }\n}\n';
    const fixes = fixesFor(text, 'x.lora.json');
    assert.deepEqual(fixes.map((f) => [f.title, f.preferred === true]), [
      ['Rename `alpah` to `alpha`', true],
      ['Remove `alpah`', false],
    ]);
    const renamed = apply(text, fixes[0]);
    assert.match(renamed, /"alpha": 8/);
    assert.equal(parseExperimentConfig(renamed, 'x.lora.json').config?.lora.alpha, 8);
    const removed = apply(text, fixes[1]);
    assert.doesNotMatch(removed, /alpah/);
    const parsed = parseExperimentConfig(removed, 'x.lora.json');
    assert.deepEqual(parsed.issues, []);
    assert.equal(parsed.config?.lora.r, 4);
  });

  it('YAML: the same two fixes; the removal takes the whole key line; a model key uses the kind-specific section', () => {
    const text = 'kind: low-rank-recovery\nmodel:\n  inFeatures: 32\n  outFeaturs: 16\nlora:\n  r: 2\n';
    const fixes = fixesFor(text, 'y.lora.yaml');
    assert.equal(fixes[0].title, 'Rename `outFeaturs` to `outFeatures`');
    assert.equal(parseExperimentConfig(apply(text, fixes[0]), 'y.lora.yaml').config?.model.kind, 'low-rank-recovery');
    const removed = apply(text, fixes[1]);
    assert.equal(removed, 'kind: low-rank-recovery\nmodel:\n  inFeatures: 32\nlora:\n  r: 2\n');
  });

  it('a key far from every known key gets only the removal; other errors get no fix', () => {
    const text = '{ "kind": "low-rank-recovery", "zzzzzzzz": 1 }';
    assert.deepEqual(fixesFor(text, 'z.lora.json').map((f) => f.title), ['Remove `zzzzzzzz`']);
    const bad = parseExperimentConfig('{ "kind": "low-rank-recovery", "lora": { "r": 0 } }', 'b.lora.json').issues[0];
    assert.deepEqual(configFixes('{ "kind": "low-rank-recovery", "lora": { "r": 0 } }', 'b.lora.json', bad), []);
  });
});
