// The playground's host side with the real worker (src/worker/playgroundWorker.ts through tsx): webview
// messages are checked field by field, a new generation replaces the running one, and a worker that dies
// is reported to the page instead of leaving it waiting.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { parsePlaygroundMessage, type FromPlaygroundWorker, type ToPlaygroundWebview } from '../../../src/protocol/playground';
import { PlaygroundHost, type PlaygroundWorkerPort } from '../../../src/playground/host';
import { PEFT_FIXTURES } from '../interop/helpers';

const ROOT = path.resolve(__dirname, '../../..');
const TSX_CJS = path.join(ROOT, 'node_modules/tsx/dist/cjs/index.cjs');
const CASE = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
const REQUEST = { prompt: 'LoRA', maxTokens: 6, temperature: 0, topK: 0, seed: 0, ignoreEos: true };

function realWorker(): { port: PlaygroundWorkerPort; worker: Worker } {
  const worker = new Worker(path.join(ROOT, 'src/worker/playgroundWorker.ts'), { execArgv: ['--require', TSX_CJS] });
  return {
    worker,
    port: {
      postMessage: (m) => worker.postMessage(m),
      onMessage: (l) => worker.on('message', (m: FromPlaygroundWorker) => l(m)),
      onExit: (l) => worker.on('exit', l),
      terminate: () => void worker.terminate(),
    },
  };
}

async function until(what: string, probe: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('playground: host and worker', function () {
  this.timeout(60_000);

  it('checks every field of a message from the webview', () => {
    assert.deepEqual(parsePlaygroundMessage({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parsePlaygroundMessage({ type: 'generate', request: REQUEST }), { type: 'generate', request: REQUEST });
    const bad = (m: unknown, re: RegExp) => assert.throws(() => parsePlaygroundMessage(m), re);
    bad(null, /expected an object/);
    bad({ type: 'eval' }, /unknown type "eval"/);
    bad({ type: 'generate' }, /expected a request object/);
    bad({ type: 'generate', request: { ...REQUEST, temperature: -0.5 } }, /temperature should be a number in \[0, 100\], got -0.5/);
    bad({ type: 'generate', request: { ...REQUEST, seed: 1.5 } }, /seed should be an integer in \[0, 2147483647\], got 1.5/);
    bad({ type: 'generate', request: { ...REQUEST, topK: '3' } }, /topK should be an integer .* got "3"/);
    bad({ type: 'generate', request: { ...REQUEST, prompt: 7 } }, /prompt should be a string/);
    bad({ type: 'generate', request: { ...REQUEST, ignoreEos: 'yes' } }, /ignoreEos should be true or false/);
  });

  it('a new generation replaces the running one: only its tokens reach the page', async () => {
    const posted: ToPlaygroundWebview[] = [];
    const logs: string[] = [];
    const { port, worker } = realWorker();
    const fromWorker: FromPlaygroundWorker[] = [];
    worker.on('message', (m: FromPlaygroundWorker) => fromWorker.push(m));
    const host = new PlaygroundHost(port, path.join(CASE, 'base'), path.join(CASE, 'adapter'), { post: (m) => posted.push(m), log: (l, m) => logs.push(`${l}: ${m}`) });
    try {
      await until('didLoad', () => posted.some((m) => m.type === 'didLoad'));
      const first = host.generate({ ...REQUEST, maxTokens: 500 });
      const second = host.generate(REQUEST);
      await until('the second generation to finish', () => !host.busy);
      const gens = new Set(posted.flatMap((m) => ('genId' in m ? [m.genId] : [])));
      assert.ok(!gens.has(first), `events of the replaced generation ${first} reached the page`);
      // …and the worker stopped it after its current token (it asked for 500 per side).
      const old = fromWorker.filter((m) => 'genId' in m && m.genId === first);
      assert.ok(old.filter((m) => m.type === 'didTokens').length <= 4, `${old.length} messages of the replaced generation`);
      assert.deepEqual(old.filter((m) => m.type === 'didFinishSide').map((m) => m.type === 'didFinishSide' && m.stop), old.length ? ['cancelled', 'cancelled'] : []);
      for (const side of ['base', 'adapter']) {
        assert.equal(posted.filter((m) => m.type === 'didTokens' && m.genId === second && m.side === side).length, 6, side);
      }
      // A page that reloads gets the load and the last generation back, in order.
      const kinds = ['didStartLoading', 'didLoad', 'didStartGeneration', ...Array(12).fill('didTokens'), 'didFinishSide', 'didFinishSide'];
      assert.deepEqual(host.history.map((m) => m.type), kinds);
      const before = posted.length;
      host.handleMessage({ type: 'ready' });
      assert.deepEqual(posted.slice(before), host.history);
      host.handleMessage({ type: 'generate', request: { ...REQUEST, maxTokens: 0 } });
      assert.match(logs.at(-1) ?? '', /maxTokens should be an integer in \[1, 1024\], got 0/);
    } finally {
      host.dispose();
    }
  });

  it('a worker that dies mid-generation ends both columns and tells the page', async () => {
    const posted: ToPlaygroundWebview[] = [];
    const { port, worker } = realWorker();
    const host = new PlaygroundHost(port, path.join(CASE, 'base'), path.join(CASE, 'adapter'), { post: (m) => posted.push(m), log: () => {} });
    try {
      await until('didLoad', () => posted.some((m) => m.type === 'didLoad'));
      host.generate({ ...REQUEST, maxTokens: 1000 });
      await until('a first token', () => posted.some((m) => m.type === 'didTokens'));
      await worker.terminate();
      await until('the failure', () => posted.some((m) => m.type === 'didFailLoad'));
      const ends = posted.filter((m) => m.type === 'didFinishSide');
      assert.deepEqual(ends.map((m) => m.type === 'didFinishSide' && [m.side, m.stop]), [['base', 'failed'], ['adapter', 'failed']]);
      assert.match((posted.find((m) => m.type === 'didFailLoad') as { message: string }).message, /the playground worker stopped \(exit code 1\); reopen Try Adapter/);
      assert.equal(host.busy, false);
    } finally {
      host.dispose();
    }
  });
});
