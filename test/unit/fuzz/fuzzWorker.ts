// Runs a slice of a fuzz campaign (test/unit/fuzz/fuzzCore.ts) in a worker thread, so that the test
// can stop a case that hangs (the watchdog reads the case index this writes before each case) and
// bound its memory (the worker's heap limit; the process's resident size checked as it goes).
import { parentPort, workerData } from 'node:worker_threads';
import { DRIVERS, cleanupTmp, loadCorpus, makeCase, runCase, type DriverName, type Outcome } from './fuzzCore';

export interface FuzzWorkerData {
  seed: number;
  start: number;
  count: number;
  /** Int32Array over it: [0] = index + 1 of the case running now. */
  progress: SharedArrayBuffer;
  /** Stop with a 'memory' failure when the process's resident size grows past this. */
  maxRssBytes: number;
}

export interface FuzzCrasher {
  index: number;
  driver: DriverName;
  seed: string;
  error: string;
  bytes: Uint8Array;
}

export interface FuzzResult {
  cases: number;
  counts: Record<DriverName, Record<Outcome, number>>;
  crashers: FuzzCrasher[];
  peakRssBytes: number;
  memoryFailure?: { index: number; rssBytes: number };
}

async function main(): Promise<void> {
  const data = workerData as FuzzWorkerData;
  const progress = new Int32Array(data.progress);
  const corpus = loadCorpus();
  const counts = Object.fromEntries(DRIVERS.map((d) => [d, { ok: 0, 'typed-error': 0 }])) as FuzzResult['counts'];
  const crashers: FuzzCrasher[] = [];
  let peak = process.memoryUsage.rss();
  let memoryFailure: FuzzResult['memoryFailure'];
  let done = 0;
  for (let i = data.start; i < data.start + data.count; i++) {
    Atomics.store(progress, 0, i + 1);
    const c = makeCase(corpus, data.seed, i);
    try {
      counts[c.driver][await runCase(corpus, c)]++;
    } catch (e) {
      if (crashers.length < 50) crashers.push({ index: i, driver: c.driver, seed: c.seed, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}`.slice(0, 2000) : String(e), bytes: c.bytes });
    }
    done++;
    if (i % 25 === 0) {
      const rss = process.memoryUsage.rss();
      peak = Math.max(peak, rss);
      if (rss > data.maxRssBytes) {
        memoryFailure = { index: i, rssBytes: rss };
        break;
      }
    }
  }
  cleanupTmp();
  const result: FuzzResult = { cases: done, counts, crashers, peakRssBytes: peak, memoryFailure };
  parentPort!.postMessage(result);
}

void main();
