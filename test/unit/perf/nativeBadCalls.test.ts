// Seeded bad calls into the native addon (test/native/badCalls.cjs, in a child process so that a
// crash shows as a signal): well-formed calls of every function with one or two arguments broken
// (wrong types, detached, empty or short arrays, overlapping views, bad sizes, offsets and eps,
// missing arguments). Each must return or throw a TypeError/RangeError that names the problem; a call
// whose needed array was emptied, detached or shortened must throw (an empty bias is not "no bias").
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NATIVE_FILE } from '../../../src/runs/nativeLoader';

const ROOT = path.resolve(__dirname, '../../..');
const ADDON = path.join(ROOT, 'dist', 'native', NATIVE_FILE);
const CALLS = Number(process.env.LORA_LAB_NATIVE_BAD_CALLS ?? 3000);

describe('perf: native addon under seeded bad calls', function () {
  this.timeout(120_000);

  it(`${CALLS} calls × 2 seeds: a result or a TypeError/RangeError naming the problem; no crash, no generic N-API error`, function () {
    if (!fs.existsSync(ADDON)) {
      console.log(`      (skipped: ${ADDON} is not built; npm run build:native)`);
      this.skip();
    }
    for (const seed of [1, 2]) {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'test/native/badCalls.cjs'), ADDON, String(CALLS), String(seed)], { encoding: 'utf8', timeout: 100_000 });
      assert.equal(r.signal, null, `seed ${seed}: the process died of ${r.signal}:\n${r.stderr}`);
      assert.equal(r.status, 0, `seed ${seed}: exit ${r.status}:\n${r.stderr}`);
      const out = JSON.parse(r.stdout) as { calls: number; returned: number; typeErrors: number; rangeErrors: number; failures: string[] };
      console.log(`      seed ${seed}: ${out.calls} calls: ${out.returned} returned, ${out.typeErrors} TypeError, ${out.rangeErrors} RangeError`);
      assert.deepEqual(out.failures, []);
      assert.equal(out.calls, CALLS);
      assert.ok(out.returned > 0 && out.typeErrors > 0 && out.rangeErrors > 0, 'the calls reach every outcome');
    }
  });
});
