// What the CLI prints never carries control characters from files: safetensors metadata
// (ss_sd_model_name …), tensor and module names, file names in error messages. An escape sequence in
// any of them is printed as \u001b…, so the terminal shows it instead of acting on it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { inspectAdapter } from '../../../src/formats/adapters/inspect';
import { loadInspectInput } from '../../../src/io/hfFolder';
import { formatReport } from '../../../src/cli/commands/inspect';
import { terminalSafe, terminalSafeJson, terminalValue } from '../../../src/cli/terminalText';
import { REPO_ROOT, TSX_IMPORT } from '../runs/tinyExperiment';

// OSC title change + BEL, clear screen, cursor up, a C1 CSI, a right-to-left override, a bare CR.
const EVIL = '\u001b]0;pwned\u0007\u001b[2J\u001b[1A\u009b31m\u202eevil\rX';
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const f32 = (shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i) * 0.1) });

describe('cli: no control characters from files reach the terminal', function () {
  this.timeout(60_000);
  let tmp: string;
  let file: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-term-'));
    file = path.join(tmp, 'kohya.safetensors');
    fs.writeFileSync(
      file,
      serializeSafetensors(
        {
          'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight': f32([2, 3]),
          'lora_unet_mid_block_attentions_0_proj_in.lora_up.weight': f32([4, 2]),
          [`extra${EVIL}`]: f32([2]),
        },
        { ss_sd_model_name: `v1-5${EVIL}.safetensors`, [`key${EVIL}`]: `value${EVIL}`, ss_network_args: '{"conv_dim": "4"}' },
      ),
    );
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('terminalSafe escapes C0 (but \\n, \\t), DEL, C1, U+2028/9 and bidi controls; terminalValue also \\n, \\t and cuts', () => {
    const value = { s: `a${EVIL}\u2028` };
    assert.deepEqual(JSON.parse(terminalSafeJson(JSON.stringify(value, null, 2))), value);
    assert.ok(!UNSAFE.test(terminalSafeJson(JSON.stringify(value)).replace(/\n/g, '')));
    assert.equal(terminalSafe('a\u001b[2Jb\nc\td\u007f\u0085\u2028\u202e\u2066'), 'a\\u001b[2Jb\nc\td\\u007f\\u0085\\u2028\\u202e\\u2066');
    assert.equal(terminalSafe('plain ünïcödé → ✓'), 'plain ünïcödé → ✓');
    assert.equal(terminalValue('a\nb\tc'), 'a\\nb\\tc');
    assert.equal(terminalValue('x'.repeat(10), 4), 'xxxx… (10 chars)');
  });

  it('inspect: the report (base-model sentence from ss_sd_model_name, metadata, tensor names) is printed escaped', async () => {
    const report = inspectAdapter(await loadInspectInput(file, { readValues: true }));
    assert.ok(report.baseModel?.includes('\u001b'), 'the report itself keeps the raw value (JSON output escapes it)');
    const text = formatReport(report, true);
    const bad = text.split('\n').find((l) => UNSAFE.test(l));
    assert.equal(bad, undefined, `a printed line holds a control character: ${JSON.stringify(bad)}`);
    assert.match(text, /Needs the base model v1-5\\u001b\]0;pwned\\u0007\\u001b\[2J/);
    assert.match(text, /key\\u001b\]0;pwned/);
  });

  it('lora-lab inspect (text) and its error messages on stderr carry none either', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [...TSX_IMPORT, path.join(REPO_ROOT, 'src/cli/main.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    const ok = run(['inspect', file, '--all']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(!UNSAFE.test(ok.stdout), JSON.stringify(ok.stdout));
    assert.match(ok.stdout, /ss_sd_model_name: v1-5\\u001b/);
    // --json: the same values (JSON escapes), no raw control character either.
    const js = run(['inspect', file, '--json']);
    assert.equal(js.status, 0, js.stderr);
    assert.ok(!UNSAFE.test(js.stdout.replace(/\n/g, '')), JSON.stringify(js.stdout));
    assert.equal(JSON.parse(js.stdout).metadata.ss_sd_model_name, `v1-5${EVIL}.safetensors`);
    const missing = run(['inspect', path.join(tmp, `nope${EVIL}`)]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\\u001b\]0;pwned\\u0007.*: no such file or folder/);
    assert.ok(!UNSAFE.test(missing.stderr.replace(/\n/g, '')), JSON.stringify(missing.stderr));
  });
});
