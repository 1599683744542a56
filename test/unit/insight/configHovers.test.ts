import * as assert from 'node:assert/strict';
import { configKeyDoc, isMlxConfig } from '../../../src/insight/configKeyDocs';
import { modelCounts, modelHoverText } from '../../../src/insight/hoverText';
import { fileModelShape } from '../../../src/insight/modelShapes';
import { linearsInFile } from '../../../src/insight/pythonCalls';

describe('hovers: per-key text in adapter configs, mlx-lm configs, a model defined in a Python file', () => {
  it('adapter_config.json: each key has its own line (not one block for every key)', () => {
    const keys = ['r', 'lora_alpha', 'target_modules', 'lora_dropout', 'bias', 'task_type', 'use_rslora', 'init_lora_weights', 'fan_in_fan_out'];
    const docs = keys.map((k) => configKeyDoc([k], false));
    for (const [i, d] of docs.entries()) assert.ok(d?.startsWith(`**\`${keys[i]}\`** — `), `${keys[i]}: ${d}`);
    assert.equal(new Set(docs).size, keys.length, 'every key says something different');
    assert.match(configKeyDoc(['lora_alpha'], false)!, /s = α\/r/);
    assert.match(configKeyDoc(['lora_dropout'], false)!, /No effect at inference/);
    assert.equal(configKeyDoc(['no_such_key'], false), undefined);
  });

  it('mlx-lm configs are recognised and documented, nested keys by their path', () => {
    assert.ok(isMlxConfig({ lora_parameters: { rank: 8, scale: 20 }, num_layers: 16 }));
    assert.ok(isMlxConfig({ fine_tune_type: 'lora' }));
    assert.ok(!isMlxConfig({ peft_type: 'LORA', r: 8 }));
    assert.match(configKeyDoc(['lora_parameters', 'scale'], true)!, /^\*\*`lora_parameters\.scale`\*\* — mlx-lm scale s: ΔW = s·B·A directly/);
    assert.match(configKeyDoc(['num_layers'], true)!, /last num_layers transformer blocks/);
    assert.match(configKeyDoc(['lora_parameters', 'keys', 0], true)!, /Module paths/);
  });

  it('LoraConfig(r=8) in Python counts the nn.Linear(1024, 1024) layers defined in the same file', () => {
    const text = [
      'import torch.nn as nn',
      'from peft import LoraConfig',
      'class Block(nn.Module):',
      '    def __init__(self):',
      '        super().__init__()',
      '        self.q_proj = nn.Linear(1024, 1024)',
      '        self.v_proj: nn.Linear = nn.Linear(in_features=1024, out_features=1024, bias=False)',
      '        self.mlp = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024))',
      '        self.head = nn.Linear(hidden, 10)  # not a literal size: skipped',
      'config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])',
    ].join('\n');
    const linears = linearsInFile(text);
    assert.deepEqual(
      linears.map((l) => [l.name, l.inFeatures, l.outFeatures, l.hasBias]),
      [
        ['q_proj', 1024, 1024, true],
        ['v_proj', 1024, 1024, false],
        ['linear2', 1024, 4096, true],
        ['linear3', 4096, 1024, true],
      ],
    );
    const shape = fileModelShape(linears);
    assert.equal(shape.totalParams, 1024 * 1024 + 1024 + 1024 * 1024 + 1024 * 4096 + 4096 + 4096 * 1024 + 1024);
    const input = { shape, r: 8, alpha: 16, scaling: 'standard' as const, targets: ['q_proj', 'v_proj'], trainBias: false, convention: 'peft' as const, title: 'LoraConfig' };
    const c = modelCounts(input);
    assert.deepEqual(c.adapted.map((l) => l.name), ['q_proj', 'v_proj']);
    assert.equal(c.loraParams, 2 * 8 * (1024 + 1024)); // A 8×1024 + B 1024×8 per layer
    assert.match(modelHoverText(input), /the nn\.Linear layers of this file \(4\)/);
    assert.match(modelHoverText(input), /32,768/);
  });
});
