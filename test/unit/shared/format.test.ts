import * as assert from 'node:assert/strict';
import { formatBytes, formatDuration, formatLoss } from '../../../src/shared/format';

describe('shared/format', () => {
  it('formats a loss to four significant digits, exponent form at the extremes', () => {
    assert.equal(formatLoss(0.012345), '0.01235');
    assert.equal(formatLoss(0.123456), '0.1235');
    assert.equal(formatLoss(0), '0.000');
    assert.equal(formatLoss(1.5e-5), '1.500e-5');
    assert.equal(formatLoss(-2.5e-4), '-2.500e-4');
    assert.equal(formatLoss(12_345.6), '1.235e+4');
    assert.equal(formatLoss(9999), '9999');
    assert.equal(formatLoss(NaN), 'NaN');
    assert.equal(formatLoss(Infinity), 'Infinity');
    assert.equal(formatLoss(undefined), '-');
  });

  it('formats a duration in milliseconds with its units', () => {
    assert.equal(formatDuration(0), '0 s');
    assert.equal(formatDuration(12_400), '12.4 s');
    assert.equal(formatDuration(42_510), '42.5 s');
    assert.equal(formatDuration(61_400), '1 min 01 s');
    assert.equal(formatDuration(125_000), '2 min 05 s');
    assert.equal(formatDuration(3_599_999), '59 min 59 s');
    assert.equal(formatDuration(3_600_000), '1 h 00 min');
    assert.equal(formatDuration(3_723_000), '1 h 02 min');
    assert.equal(formatDuration(-1), '–');
    assert.equal(formatDuration(NaN), '–');
    assert.equal(formatDuration(Infinity), '–');
  });

  it('formats a size 1024-based with IEC units, three significant digits', () => {
    assert.equal(formatBytes(0), '0 bytes');
    assert.equal(formatBytes(1), '1 byte');
    assert.equal(formatBytes(1023), '1023 bytes');
    assert.equal(formatBytes(1024), '1 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(150 * 1024 + 700), '151 KiB');
    assert.equal(formatBytes(8 * 1024 ** 2 * 1.234), '9.87 MiB');
    assert.equal(formatBytes(3 * 1024 ** 3), '3 GiB');
    assert.equal(formatBytes(2048 * 1024 ** 4), '2048 TiB');
    assert.equal(formatBytes(-1), '-1 bytes');
  });
});
