// The adapter values pass (src/formats/adapters/valuesCheck.ts): alpha scalars and NaN/Inf counts, one
// tensor per step, the same findings whether run at once or in steps.
import * as assert from 'node:assert/strict';
import { encodeBf16, encodeF16 } from '../../../src/formats/dtype';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { checkValues, checkValuesAsync, nonFiniteSummary, nonFiniteWarning, valuesCheckSteps } from '../../../src/formats/adapters';

const f16 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'F16', shape, data: encodeF16(v) });
const bf16 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'BF16', shape, data: encodeBf16(v) });
const f32 = (shape: number[], v: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: Float32Array.from(v) });

// Data-section order is name order: a_down, a_up, alpha (a), b_down, b_up, alpha (b), step.
const st = parseSafetensors(
  serializeSafetensors({
    'lora_unet_a_proj.lora_down.weight': f16([2, 3], [1, NaN, 2, NaN, 0, 3]),
    'lora_unet_a_proj.lora_up.weight': bf16([3, 2], [Infinity, 1, 2, -Infinity, NaN, 0]),
    'lora_unet_a_proj.alpha': f16([], [1]),
    'lora_unet_b_proj.lora_down.weight': f32([2, 3], [1, 2, 3, 4, 5, 6]),
    'lora_unet_b_proj.lora_up.weight': bf16([3, 2], [0.5, 1, 2, 3, 4, 5]),
    'lora_unet_b_proj.alpha': f16([1], [4]),
    'lora_unet_step': { dtype: 'I32', shape: [2], data: Int32Array.from([7, 8]) },
  }),
);

describe('formats/adapters/valuesCheck', () => {
  it('reads 0-d and [1] F16 alphas and counts NaN/Inf in F16, BF16 and F32 tensors', () => {
    const c = checkValues(st.header.tensors, (n) => st.toFloat32(n));
    assert.deepEqual([...c.scalars], [['lora_unet_a_proj.alpha', 1], ['lora_unet_b_proj.alpha', 4]]);
    assert.deepEqual(c.nonFinite, [
      { name: 'lora_unet_a_proj.lora_down.weight', nan: 2, inf: 0 },
      { name: 'lora_unet_a_proj.lora_up.weight', nan: 1, inf: 2 },
    ]);
    assert.deepEqual(c.nonFinite.map(nonFiniteWarning), [
      'tensor "lora_unet_a_proj.lora_down.weight" has 2 NaN value(s)',
      'tensor "lora_unet_a_proj.lora_up.weight" has 1 NaN and 2 Inf value(s)',
    ]);
    assert.equal(nonFiniteSummary(c.nonFinite), 'NaN/Inf values in 2 tensors: lora_unet_a_proj.lora_down.weight, lora_unet_a_proj.lora_up.weight');
    assert.equal(nonFiniteSummary([]), undefined);
    const many = ['a', 'b', 'c', 'd'].map((name) => ({ name, nan: 0, inf: 1 }));
    assert.equal(nonFiniteSummary(many.slice(0, 1)), 'NaN/Inf values in 1 tensor: a');
    assert.equal(nonFiniteSummary(many), 'NaN/Inf values in 4 tensors: a, b, c, …');
  });

  it('steps one tensor at a time, reading only float and one-element tensors', () => {
    const reads: string[] = [];
    const steps = valuesCheckSteps(st.header.tensors, (n) => (reads.push(n), st.toFloat32(n)));
    assert.deepEqual(reads, [], 'nothing is read before the first step');
    const perStep: string[][] = [];
    let s = steps.next();
    while (!s.done) {
      perStep.push(reads.splice(0));
      assert.ok(perStep[perStep.length - 1].length <= 1, 'at most one tensor read per step');
      s = steps.next();
    }
    assert.equal(perStep.length, st.header.tensors.length);
    // The I32 [2] tensor is stepped over unread.
    assert.deepEqual(perStep[6], []);
    assert.deepEqual(s.value, checkValues(st.header.tensors, (n) => st.toFloat32(n)));
  });

  it('checkValuesAsync pauses after every tensor and finds the same as checkValues', async () => {
    let pauses = 0;
    const c = await checkValuesAsync(st.header.tensors, (n) => st.toFloat32(n), async () => void pauses++);
    assert.equal(pauses, st.header.tensors.length);
    assert.deepEqual(c, checkValues(st.header.tensors, (n) => st.toFloat32(n)));
  });
});
