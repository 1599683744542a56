// Training worker (dist/worker.js), spawned by the extension host in a worker_threads Worker so tfjs never
// runs on the host. Speaks src/protocol/worker.ts: one 'start' per worker, 'cancel' at any time (the
// engine yields a macrotask between steps, so the message is seen within one step). Progress arrives
// from trainRun already batched to ≤ 4 events/s. When the run ends the port closes and the thread exits.
import { parentPort } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../protocol/worker';
import { trainRun } from '../runs/trainRun';
import { stopWasmThreads } from '../runs/backendSetup';

const port = parentPort;
if (!port) throw new Error('trainWorker must run in a worker_threads Worker (no parentPort)');

const controller = new AbortController();
let started = false;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

async function start(msg: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  let finished = false;
  try {
    await trainRun({
      configPath: msg.configPath,
      resumeRunDir: msg.resumeRunDir,
      sweepIndex: msg.sweepIndex,
      outDir: msg.outDir,
      wasmDir: msg.wasmDir,
      threads: msg.threads,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'didFinish') finished = true;
        post(e);
      },
    });
  } catch (e) {
    // Failed before the run folder existed (bad config, nothing to resume) or the engine threw.
    const message = e instanceof Error ? e.message : String(e);
    post({ type: 'log', level: 'error', message });
    if (!finished) post({ type: 'didFinish', runDir: msg.resumeRunDir ?? '', status: 'failed', step: 0, error: message });
  } finally {
    // The threaded wasm build's pthreads would keep this thread alive; a worker runs one job.
    if (msg.threads !== undefined && msg.threads > 1) stopWasmThreads();
    port!.close();
  }
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start':
      if (started) {
        post({ type: 'log', level: 'warn', message: 'this worker already runs a job; start a new worker for another run' });
        return;
      }
      started = true;
      void start(msg);
      return;
    case 'cancel':
      controller.abort();
      return;
    default: {
      const never: never = msg;
      post({ type: 'log', level: 'warn', message: `unknown message ${JSON.stringify(never)}` });
    }
  }
});
