import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ReasonError } from '../../../src/shared/errors';
import { EngineError, NonFiniteLossError } from '../../../src/engine/errors';
import { FormatError } from '../../../src/formats/errors';
import { RunError } from '../../../src/runs/runErrors';
import { NotRegularFileError } from '../../../src/io/regularFile';

describe('shared/errors: ReasonError', () => {
  it('is() matches the class and its subclasses, and narrows by reason', () => {
    const e = new NonFiniteLossError(7, NaN);
    assert.ok(NonFiniteLossError.is(e));
    assert.ok(EngineError.is(e, 'non-finite-loss'));
    assert.ok(!EngineError.is(e, 'shape-mismatch'));
    assert.ok(ReasonError.is(e));
    assert.ok(!NonFiniteLossError.is(new EngineError('non-finite-loss', 'x')), 'a base-class error is not a subclass one');
    assert.ok(!FormatError.is(e));
    assert.ok(!RunError.is(undefined) && !RunError.is('RunError') && !RunError.is(null));
  });

  it('keeps name, message, reason, cause and the fields subclasses add', () => {
    const cause = new Error('disk full');
    const e = new RunError('io', 'run.json: could not be written', { path: '/r/run.json', cause });
    assert.equal(e.name, 'RunError');
    assert.equal(e.message, 'run.json: could not be written');
    assert.equal(e.reason, 'io');
    assert.equal(e.path, '/r/run.json');
    assert.equal(e.cause, cause);
    assert.ok(e instanceof Error);
    assert.match(String(e.stack), /^RunError: run\.json/);
    const f = new FormatError('tensor-not-found', 'not in the file', { source: 'a.safetensors', tensor: 'w' });
    assert.equal(f.message, 'a.safetensors: tensor "w": not in the file');
    assert.equal(new NonFiniteLossError(3, -Infinity, 'gradient norm').name, 'NonFiniteLossError');
    assert.equal(new NotRegularFileError('/p', 'a FIFO (named pipe)').reason, 'not-regular-file');
  });

  it('an error of a second copy of the module is recognised by its brand, an impostor by name is not', async () => {
    // A second copy, as a second bundle has one: the same two source files at another path.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-errors-'));
    const src = path.resolve(__dirname, '../../../src');
    for (const f of ['formats/errors.ts', 'shared/errors.ts']) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.copyFileSync(path.join(src, f), path.join(dir, f));
    }
    const copy = (await import(pathToFileURL(path.join(dir, 'formats/errors.ts')).href)) as typeof import('../../../src/formats/errors');
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(copy.FormatError, FormatError, 'the test needs a second copy of the class');
    const other = new copy.FormatError('file-too-large', 'too big');
    assert.ok(!(other instanceof FormatError));
    assert.ok(FormatError.is(other));
    assert.ok(FormatError.is(other, 'file-too-large'));
    assert.ok(!FormatError.is(other, 'invalid-header'));
    assert.ok(!RunError.is(other));
    const impostor = Object.assign(new Error('too big'), { name: 'FormatError', reason: 'file-too-large' });
    assert.ok(!FormatError.is(impostor), 'never matched by its name string');
  });
});
