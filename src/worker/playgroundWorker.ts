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
let running: { genId: number; controller: AbortController; done: Promise<void> } | undefined;

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

async function generate(msg: Extract<ToPlaygroundWorker, { type: 'generate' }>): Promise<void> {
  if (running) {
    running.controller.abort();
    await running.done;
  }
  const s = await session;
  if (!s) {
    post({ type: 'log', level: 'warn', message: 'generate: no model is loaded' });
    return;
  }
  const controller = new AbortController();
  const done = runPlaygroundGeneration(s, msg.genId, msg.request, post, controller.signal).catch((e: unknown) => post({ type: 'log', level: 'error', message: `generation failed: ${(e as Error).message}` }));
  running = { genId: msg.genId, controller, done };
  await done;
  if (running?.genId === msg.genId) running = undefined;
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
      void generate(msg);
      return;
    case 'cancel':
      if (running?.genId === msg.genId) running.controller.abort();
      return;
    default: {
      const never: never = msg;
      post({ type: 'log', level: 'warn', message: `unknown message ${JSON.stringify(never)}` });
    }
  }
});
