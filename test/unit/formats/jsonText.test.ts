// Values and JSON problems in error messages: by position and kind, cut to a length, never a stack
// overflow on a value JSON.parse accepted thousands of levels deep (found by the readers' fuzzer:
// parsePeftConfig, parseHfConfig and the safetensors header reader quoted such values with
// JSON.stringify and threw RangeError instead of their typed errors).
import * as assert from 'node:assert/strict';
import { describeJsonSyntaxError, showValue } from '../../../src/formats/jsonText';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import { parseHeader } from '../../../src/formats/safetensors';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { FormatError } from '../../../src/formats/errors';

const deep = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;

describe('formats: JSON in error messages', () => {
  it('showValue: JSON text, cut to a length; a deeply nested value named, not printed', () => {
    assert.equal(showValue('a"b'), '"a\\"b"');
    assert.equal(showValue([1, { a: null }]), '[1,{"a":null}]');
    assert.equal(showValue('x'.repeat(500), 10), '"xxxxxxxxx… (502 characters)');
    assert.equal(showValue(undefined), 'undefined');
    assert.equal(showValue(JSON.parse(deep(20000))), '(a list nested more than 64 levels deep)');
    assert.equal(showValue(JSON.parse(`{"a":${deep(100)}}`)), '(an object nested more than 64 levels deep)');
  });

  it('describeJsonSyntaxError: line, column and problem; a deep unclosed text is named by its depth', () => {
    assert.equal(describeJsonSyntaxError('{"a": 1,,}'), 'not valid JSON (expected a property name in double quotes at line 1, column 9)');
    assert.equal(describeJsonSyntaxError('  \n '), 'not valid JSON (the file is empty)');
    assert.equal(describeJsonSyntaxError('['.repeat(50000)), 'not valid JSON (nested more than 1000 levels deep at line 1, column 1001)');
  });

  it('readers given a 20,000-deep value where a number belongs: their typed error, no RangeError', () => {
    assert.throws(() => parsePeftConfig(`{"peft_type": "LORA", "r": ${deep(20000)}}`), (e: Error) => InteropError.is(e, 'bad-config') && /"r" should be a positive integer, got \(a list nested more than 64 levels deep\)/.test(e.message));
    assert.throws(() => parseHfConfig(`{"model_type": "gpt2", "n_embd": ${deep(20000)}}`), (e: Error) => InteropError.is(e, 'bad-config') && /nested more than 64 levels deep/.test(e.message));
    const json = `{"t": {"dtype": "F32", "shape": [1], "data_offsets": ${deep(20000)}}}`;
    const bytes = new Uint8Array(8 + json.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(new TextEncoder().encode(json), 8);
    assert.throws(() => parseHeader(bytes, bytes.length, 'x.safetensors'), (e: Error) => FormatError.is(e) && /data_offsets/.test(e.message));
  });
});
