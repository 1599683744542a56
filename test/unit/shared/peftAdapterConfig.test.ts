// The one LoRA scale rule and the one adapter_config.json writer (src/shared), and that what the writer
// says is read back by the PEFT config reader as the scale training used.
import * as assert from 'node:assert/strict';
import { loraScale, peftAlphaFor, peftScale } from '../../../src/shared/loraScale';
import { peftAdapterConfig } from '../../../src/shared/peftAdapterConfig';
import { moduleHyper, peftConfigFromJson } from '../../../src/formats/peftConfig';

describe('shared: LoRA scale and the PEFT adapter config', () => {
  it('scales α/r, α/√r and 1, and PEFT\'s rule from use_rslora', () => {
    assert.equal(loraScale(16, 4, 'standard'), 4);
    assert.equal(loraScale(16, 4, 'rslora'), 8);
    assert.equal(loraScale(16, 4, 'none'), 1);
    assert.equal(peftScale(16, 4, false), 4);
    assert.equal(peftScale(16, 4, true), 8);
    assert.deepEqual(peftAlphaFor(16, 4, 'none'), { loraAlpha: 4, useRslora: false });
    assert.deepEqual(peftAlphaFor(16, 4, 'rslora'), { loraAlpha: 16, useRslora: true });
  });

  for (const scaling of ['standard', 'rslora', 'none'] as const) {
    it(`writes a config whose PEFT scale is training's (scaling "${scaling}")`, () => {
      const { config, notes } = peftAdapterConfig({ r: 4, alpha: 16, scaling, dropout: 0, targetModules: ['v_proj', 'q_proj', 'q_proj'] });
      const parsed = peftConfigFromJson(config);
      assert.deepEqual(parsed.notes, [], 'nothing PEFT would not understand');
      assert.equal(moduleHyper(parsed.config, 'model.layers.0.self_attn.q_proj').scale, loraScale(16, 4, scaling));
      assert.deepEqual(config.target_modules, ['q_proj', 'v_proj']);
      if (scaling === 'none') {
        assert.equal(config.lora_alpha, 4);
        assert.match(notes[0], /scaling "none" trains with scale 1; adapter_config.json says lora_alpha 4 \(= r\) instead of the configured alpha 16/);
      } else assert.deepEqual(notes, []);
    });
  }
});
