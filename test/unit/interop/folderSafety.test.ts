// Reading what a user's folders hold, safely: special files (FIFOs, devices) are refused before they
// are opened in a way that could block; a model folder's files stay inside it (an index's weight_map
// "../outside.safetensors", a config.json linked to another file of the machine) and what such a
// file holds is never quoted in the error; a Hugging Face cache snapshot (links into ../../blobs)
// still loads.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCausalLmInputs, loadHfFolder, loadInspectInput, loadPeftAdapterDir } from '../../../src/io/hfFolder';
import { readSafetensorsHeader, readWholeFile } from '../../../src/io/safetensorsFile';
import { NotRegularFileError, readRegularFileSync } from '../../../src/io/regularFile';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { PEFT_FIXTURES } from './helpers';
import { readInputIds } from '../../../src/cli/commands/logits';
import { CliError } from '../../../src/cli/command';

const ROOT = path.resolve(__dirname, '../../..');
const GPT2 = path.join(ROOT, 'examples/models/tiny-gpt2');
const SECRET = 'TOPSECRET-do-not-print-1234';
const HAS_MKFIFO = process.platform !== 'win32' && spawnSync('mkfifo', ['--help'], { stdio: 'ignore' }).error === undefined;

function copyModel(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(GPT2)) fs.copyFileSync(path.join(GPT2, f), path.join(dir, f));
}

async function rejects(p: Promise<unknown>, check: (e: Error) => boolean, what: string): Promise<Error> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `${what}: resolved instead of throwing`);
  assert.ok(check(caught), `${what}: ${caught.name}: ${caught.message}`);
  return caught;
}

describe('interop: special files, and model folders confined to themselves', function () {
  this.timeout(60_000);
  let tmp: string;
  const fifos: string[] = [];
  const mkfifo = (p: string): string => {
    execFileSync('mkfifo', [p]);
    fifos.push(p);
    return p;
  };

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-safety-'));
  });
  after(() => {
    // Should a reader have blocked on a FIFO after all (the bug these tests guard against), a writer
    // opening each releases it so the test process can still exit.
    for (const f of fifos) {
      try {
        fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // no reader waiting
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('FIFOs and devices are refused unopened', function () {
    before(function () {
      if (!HAS_MKFIFO) this.skip();
    });

    it('lora-lab logits with a FIFO model.safetensors fails at once, naming it, instead of blocking', function () {
      const dir = path.join(tmp, 'fifo-model');
      copyModel(dir);
      fs.rmSync(path.join(dir, 'model.safetensors'));
      mkfifo(path.join(dir, 'model.safetensors'));
      const ids = path.join(tmp, 'ids.json');
      fs.writeFileSync(ids, '[[1, 2, 3]]');
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'logits', '--model', dir, '--input-ids', ids, '--out', path.join(tmp, 'o.json'), '--backend', 'cpu'], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 45_000,
      });
      assert.equal(r.signal, null, 'lora-lab logits blocked on the FIFO (killed after 45 s)');
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /model\.safetensors: is a FIFO \(named pipe\), not a regular file; refused/);
      assert.ok(!fs.existsSync(path.join(tmp, 'o.json')));
    });

    it('every reader: safetensors header and whole file, inspect, config.json, index, shards, tokenizer, dataset, adapter', async function () {
      const fifo = mkfifo(path.join(tmp, 'pipe.safetensors'));
      const notRegular = (e: Error) => NotRegularFileError.is(e) && e.message.includes(`${fifo}: is a FIFO (named pipe), not a regular file; refused`);
      await rejects(readSafetensorsHeader(fifo), notRegular, 'readSafetensorsHeader');
      await rejects(readWholeFile(fifo), notRegular, 'readWholeFile');
      await rejects(loadInspectInput(fifo), notRegular, 'loadInspectInput');

      const isFifoError = (reason: string, name: string) => (e: Error) => InteropError.is(e, reason as never) && e.message.includes(`${name}: is a FIFO (named pipe)`);
      for (const name of ['config.json', 'tokenizer.json']) {
        const dir = path.join(tmp, `fifo-${name}`);
        copyModel(dir);
        fs.rmSync(path.join(dir, name), { force: true });
        mkfifo(path.join(dir, name));
        await rejects(loadHfFolder(dir), isFifoError('bad-config', name), name);
      }
      const sharded = path.join(tmp, 'fifo-shard');
      copyModel(sharded);
      fs.renameSync(path.join(sharded, 'model.safetensors'), path.join(sharded, 'model-1.safetensors'));
      const names = Object.keys(JSON.parse(fs.readFileSync(path.join(GPT2, 'model.safetensors')).subarray(8, 8 + Number(fs.readFileSync(path.join(GPT2, 'model.safetensors')).readBigUInt64LE(0))).toString()) as object).filter((n) => n !== '__metadata__');
      const weightMap = Object.fromEntries(names.map((n, i) => [n, i === 0 ? 'model-2.safetensors' : 'model-1.safetensors']));
      fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
      mkfifo(path.join(sharded, 'model-2.safetensors'));
      await rejects(loadHfFolder(sharded), isFifoError('bad-input', 'model-2.safetensors'), 'a FIFO shard');
      const idx = path.join(tmp, 'fifo-index');
      copyModel(idx);
      fs.rmSync(path.join(idx, 'model.safetensors'));
      mkfifo(path.join(idx, 'model.safetensors.index.json'));
      await rejects(loadHfFolder(idx), isFifoError('bad-config', 'model.safetensors.index.json'), 'a FIFO index');

      const extra = path.join(tmp, 'fifo-extra');
      copyModel(extra);
      mkfifo(path.join(extra, 'vocab.json'));
      await rejects(loadHfFolder(extra), isFifoError('bad-input', 'vocab.json'), 'an extra file');

      const dataset = mkfifo(path.join(tmp, 'train.txt'));
      await rejects(loadCausalLmInputs(GPT2, dataset, tmp), (e) => InteropError.is(e, 'bad-input') && e.message.includes('model.dataset.path') && e.message.includes('is a FIFO'), 'dataset');

      const adapter = path.join(tmp, 'fifo-adapter');
      fs.mkdirSync(adapter);
      fs.copyFileSync(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/adapter/adapter_config.json'), path.join(adapter, 'adapter_config.json'));
      mkfifo(path.join(adapter, 'adapter_model.safetensors'));
      await rejects(loadPeftAdapterDir(adapter), isFifoError('bad-input', 'adapter_model.safetensors'), 'adapter weights');
    });

    it('logits --input-ids: a FIFO is refused; text that is not JSON gives its position, not its content', async function () {
      const fifo = mkfifo(path.join(tmp, 'ids-pipe.json'));
      await rejects(readInputIds(fifo), (e) => CliError.is(e, 'failed') && e.message.includes('ids-pipe.json: is a FIFO (named pipe), not a regular file; refused'), 'FIFO ids');
      const bad = path.join(tmp, 'ids-bad.json');
      fs.writeFileSync(bad, `[[1, 2],\n ${SECRET}]`);
      const e = await rejects(readInputIds(bad), (x) => CliError.is(x, 'failed') && /ids-bad\.json: not valid JSON \(unexpected character at line 2, column 2\)/.test(x.message), 'bad ids');
      assert.ok(!e.message.includes(SECRET));
    });

    it('a character device (/dev/zero, endless) and a folder are refused too', function () {
      if (!fs.existsSync('/dev/zero')) this.skip();
      assert.throws(() => readRegularFileSync('/dev/zero'), (e: Error) => NotRegularFileError.is(e) && /\/dev\/zero: is a character device, not a regular file; refused/.test(e.message));
      assert.throws(() => readRegularFileSync(tmp), (e: Error) => NotRegularFileError.is(e) && /is a folder, not a regular file/.test(e.message));
    });
  });

  describe('model-folder paths stay inside the folder', function () {
    function shardedModel(name: string, shardName: string): string {
      const dir = path.join(tmp, name);
      copyModel(dir);
      const st = fs.readFileSync(path.join(dir, 'model.safetensors'));
      fs.rmSync(path.join(dir, 'model.safetensors'));
      const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString()) as Record<string, unknown>;
      const weightMap = Object.fromEntries(Object.keys(header).filter((n) => n !== '__metadata__').map((n) => [n, shardName]));
      fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
      return dir;
    }

    it('a weight_map entry "../outside.safetensors" (or absolute, or a/../../x) is refused, the outside file never read', async function () {
      fs.copyFileSync(path.join(GPT2, 'model.safetensors'), path.join(tmp, 'outside.safetensors'));
      for (const shard of ['../outside.safetensors', path.join(tmp, 'outside.safetensors'), 'sub/../../outside.safetensors']) {
        const dir = shardedModel(`escape-${fs.readdirSync(tmp).length}`, shard);
        await rejects(
          loadHfFolder(dir),
          (e) => InteropError.is(e, 'bad-config') && e.message.includes(`${JSON.stringify(shard)} (listed in model.safetensors.index.json): is outside the model folder`),
          shard,
        );
      }
      // The same weights as a shard inside the folder (also in a sub-folder) load.
      const ok = shardedModel('inside', 'shards/model-1.safetensors');
      fs.mkdirSync(path.join(ok, 'shards'));
      fs.copyFileSync(path.join(GPT2, 'model.safetensors'), path.join(ok, 'shards/model-1.safetensors'));
      const folder = await loadHfFolder(ok);
      assert.deepEqual(folder.weightFiles, [path.join(ok, 'shards/model-1.safetensors')]);
    });

    it('a weight_map value that is not a string is a clear error', async function () {
      const dir = shardedModel('nonstring', 'x');
      fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'wte.weight': 3 } }));
      await rejects(loadHfFolder(dir), (e) => InteropError.is(e, 'bad-config') && /every "weight_map" value must be a file name \(a string\), got number/.test(e.message), 'number');
    });

    it('config.json (or model.safetensors, a shard) linked to a file outside the folder is refused, its content never quoted', async function () {
      const secret = path.join(tmp, 'secret.txt');
      fs.writeFileSync(secret, `root:x:0:0:${SECRET}\n`);
      const dir = path.join(tmp, 'linked-config');
      copyModel(dir);
      fs.rmSync(path.join(dir, 'config.json'));
      fs.symlinkSync(secret, path.join(dir, 'config.json'));
      const e = await rejects(loadHfFolder(dir), (x) => InteropError.is(x, 'bad-config') && x.message.includes('config.json: is a symbolic link to') && x.message.includes('outside the model folder; refused'), 'config.json link');
      assert.ok(!e.message.includes(SECRET) && !e.message.includes('root:x'), e.message);

      const weights = path.join(tmp, 'linked-weights');
      copyModel(weights);
      fs.renameSync(path.join(weights, 'model.safetensors'), path.join(tmp, 'elsewhere.safetensors'));
      fs.symlinkSync(path.join(tmp, 'elsewhere.safetensors'), path.join(weights, 'model.safetensors'));
      await rejects(loadHfFolder(weights), (x) => InteropError.is(x) && x.message.includes('model.safetensors: is a symbolic link to') && x.message.includes('outside the model folder'), 'model.safetensors link');

      // Files merge copies next to the merged model (tokenizer_config.json, vocab.json, …) too.
      const extra = path.join(tmp, 'linked-extra');
      copyModel(extra);
      fs.symlinkSync(secret, path.join(extra, 'tokenizer_config.json'));
      const x = await rejects(loadHfFolder(extra), (y) => InteropError.is(y, 'bad-input') && y.message.includes('tokenizer_config.json: is a symbolic link to') && y.message.includes('outside the model folder'), 'extra file link');
      assert.ok(!x.message.includes(SECRET));
    });

    it('links inside the folder, and a Hugging Face cache snapshot (links into ../../blobs), load', async function () {
      const dir = path.join(tmp, 'inner-link');
      copyModel(dir);
      fs.mkdirSync(path.join(dir, 'real'));
      fs.renameSync(path.join(dir, 'config.json'), path.join(dir, 'real/config.json'));
      fs.symlinkSync('real/config.json', path.join(dir, 'config.json'));
      assert.equal((await loadHfFolder(dir)).config.modelType, 'gpt2');

      const repo = path.join(tmp, 'hub/models--org--tiny');
      const snap = path.join(repo, 'snapshots/0123abc');
      fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
      fs.mkdirSync(snap, { recursive: true });
      for (const f of fs.readdirSync(GPT2)) {
        const blob = path.join(repo, 'blobs', `sha-${f.length}`);
        fs.copyFileSync(path.join(GPT2, f), blob);
        fs.symlinkSync(path.relative(snap, blob), path.join(snap, f));
      }
      const folder = await loadHfFolder(snap);
      assert.equal(folder.config.modelType, 'gpt2');
      assert.ok(folder.paramCount > 0);
    });

    it('config texts that are not JSON: the position and the problem, none of the text', function () {
      for (const parse of [(t: string) => parseHfConfig(t, 'config.json'), (t: string) => parsePeftConfig(t, 'adapter_config.json')]) {
        assert.throws(
          () => parse(`root:x:0:0:${SECRET}\n`),
          (e: Error) => /not valid JSON \(unexpected character at line 1, column 1\)/.test(e.message) && !e.message.includes(SECRET) && !e.message.includes('root'),
        );
        assert.throws(() => parse('{\n  "a": 1\n  "b": 2\n}'), (e: Error) => /not valid JSON \(expected a comma at line 3, column 3\)/.test(e.message));
        // Deep and unclosed: JSON.parse fails without recursing; describing it must not overflow the stack either.
        assert.throws(() => parse(`{"a": ${'['.repeat(20000)}`), (e: Error) => InteropError.is(e, 'bad-config') && /not valid JSON \(nested more than 1000 levels deep at line 1, column 1006\)/.test(e.message));
      }
    });
  });
});
