import assert from 'node:assert/strict';
import { parseExperimentConfig } from '../../../src/formats/experimentConfig';
import { experimentTemplate } from '../../../src/insight/experimentTemplate';

describe('insight/experimentTemplate', () => {
  for (const kind of ['low-rank-recovery', 'attention-adaptation', 'causal-lm'] as const) {
    it(`scaffolds a ${kind} config that the CLI's parser accepts with the chosen r`, () => {
      const text = experimentTemplate({ kind, name: `my-${kind}`, r: 8, modelPath: 'models/tiny-gpt2', datasetPath: 'models/notes.txt' });
      const res = parseExperimentConfig(text, `my-${kind}.lora.json`);
      assert.deepEqual(res.issues.filter((i) => i.severity === 'error'), []);
      assert.ok(res.config);
      assert.equal(res.config.lora.r, 8);
      assert.equal(res.config.lora.alpha, 16);
      assert.equal(res.config.name, `my-${kind}`);
      assert.match(text, /^\/\/ /); // commented
    });
  }
});
