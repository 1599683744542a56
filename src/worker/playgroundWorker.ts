// Playground worker (dist/playgroundWorker.js), spawned by the playground panel in a worker_threads Worker
// so the model never runs on the extension host. Speaks ToPlaygroundWorker / FromPlaygroundWorker
// (src/protocol/playground.ts): 'open' once, then any number of 'generate' (a new one cancels the running
// one) and 'cancel'. Generation yields a macrotask between tokens, so a cancel is seen within one token.
import { parentPort } from 'node:worker_threads';
import type { FromPlaygroundWorker, ToPlaygroundWorker } from '../protocol/playground';
import { modelSizeLimit, startBackend } from '../runs/backendSetup';
import { openPlaygroundSession, type PlaygroundSession } from '../playground/session';
import { runPlaygroundGeneration } from '../playground/runner';

const port = parentPort;
if (!port) throw new Error('playgroundWorker must run in a worker_threads Worker (no parentPort)');

function post(msg: FromPlaygroundWorker): void {
  port!.postMessage(msg);
}

let session: Promise<PlaygroundSession | undefined> | undefined;
/** The latest generation; an earlier one is aborted when a new one arrives. */
let current: { genId: number; controller: AbortController } | undefined;
/** Generations run one after another: a new one starts once the aborted one has stopped. */
let queue: Promise<void> = Promise.resolve();

async function open(msg: Extract<ToPlaygroundWorker, { type: 'open' }>): Promise<PlaygroundSession | undefined> {
  try {
    const backend = await startBackend({ prefer: 'wasm', wasmDir: msg.wasmDir, threads: msg.threads });
    const s = await openPlaygroundSession(msg.modelDir, msg.adapterDir, modelSizeLimit());
    post({
      type: 'didLoad',
      info: {
        modelDir: s.modelDir,
        adapterDir: s.adapterDir,
        modelType: s.config.declaredType,
        tokenizer: s.tokenizer.kind,
        vocabSize: s.config.vocabSize,
        notes: s.notes,
        backend: backend.kernels ? `${backend.name} + ${backend.kernels}` : backend.name,
      },
    });
    return s;
  } catch (e) {
    post({ type: 'didFailLoad', message: (e as Error).message });
    return undefined;
  }
}

function generate(msg: Extract<ToPlaygroundWorker, { type: 'generate' }>): void {
  current?.controller.abort();
  const mine = { genId: msg.genId, controller: new AbortController() };
  current = mine;
  queue = queue.then(async () => {
    // Replaced before it began: nothing to run.
    if (mine.controller.signal.aborted) return;
    const s = await session;
    if (!s) {
      post({ type: 'log', level: 'warn', message: 'generate: no model is loaded' });
      return;
    }
    try {
      await runPlaygroundGeneration(s, msg.genId, msg.request, post, mine.controller.signal);
    } catch (e) {
      post({ type: 'log', level: 'error', message: `generation failed: ${(e as Error).message}` });
    } finally {
      if (current === mine) current = undefined;
    }
  });
}

port.on('message', (msg: ToPlaygroundWorker) => {
  switch (msg.type) {
    case 'open':
      if (session) {
        post({ type: 'log', level: 'warn', message: 'this playground worker already has a model; start a new worker for another' });
        return;
      }
      session = open(msg);
      return;
    case 'generate':
      generate(msg);
      return;
    case 'cancel':
      if (current?.genId === msg.genId) current.controller.abort();
      return;
    default: {
      const never: never = msg;
      post({ type: 'log', level: 'warn', message: `unknown message ${JSON.stringify(never)}` });
    }
  }
});
