// DashboardSession (the host side of the dashboard) in plain Node, on a real run folder: the
// snapshot on `ready`, batching, metrics.jsonl polling (torn last line, a resume that rewinds the
// file), checkpoint requests, and refusal of malformed webview messages.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Envelope } from '../../../src/protocol/messageHandler';
import type { MetricPoint } from '../../../src/protocol/runFormat';
import type { ToWebview } from '../../../src/protocol/webview';
import { trainRun } from '../../../src/runs/trainRun';
import { DashboardSession } from '../../../src/dashboard/dashboardSession';
import { until } from '../../support/until';

const point = (step: number): MetricPoint => ({ step, loss: 1 / step, lr: 0.01, gradNorm: 1, elapsedMs: step });

describe('DashboardSession', function () {
  this.timeout(60_000);
  let work: string;
  let runDir: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-session-'));
    const cfg = path.join(work, 's.lora.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        name: 's',
        kind: 'low-rank-recovery',
        model: { inFeatures: 8, outFeatures: 6, trueRank: 1 },
        lora: { r: 1, alpha: 1 },
        training: { steps: 20, batchSize: 16, seed: 0, evalEvery: 10, checkpointEvery: 10 },
      }),
    );
    runDir = (await trainRun({ configPath: cfg, outDir: path.join(work, 'runs'), backend: 'cpu' })).runDir;
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  function session() {
    const posted: Envelope<ToWebview>[] = [];
    const logs: string[] = [];
    const s = new DashboardSession({ post: (e) => posted.push(e), log: (_l, m) => logs.push(m), flushIntervalMs: 100, pollIntervalMs: 0 });
    return { s, posted, logs, events: (t: string) => posted.filter((e) => e.body?.type === t) };
  }

  it('answers ready with the full snapshot (history, checkpoints, spectra) and factors on request', async () => {
    const { s, posted } = session();
    await s.add([runDir]);
    await s.handleMessage({ messageId: 1, body: { type: 'ready' } });
    const reply = posted.find((e) => e.inReplyTo === 1)!;
    assert.equal(reply.body?.type, 'didSnapshot');
    const snap = reply.body!.type === 'didSnapshot' ? reply.body!.snapshot : undefined;
    const src = snap!.sources[0];
    assert.equal(src.metrics!.step.length, 20);
    assert.deepEqual(src.checkpoints, [10, 20]);
    assert.equal(src.spectra[0].samples.length, 2);
    await s.handleMessage({ messageId: 2, body: { type: 'factorsRequest', sourceId: src.id, step: 10 } });
    const f = posted.find((e) => e.inReplyTo === 2)!.body;
    assert.ok(f?.type === 'factorsResponse' && f.modules[0].a!.shape[0] === 1 && f.modules[0].b!.shape[0] === 6);
    s.dispose();
  });

  it('batches pushed points: many notifications, at most one message per interval', async () => {
    const { s, events } = session();
    await s.add([runDir]);
    for (let i = 0; i < 10; i++) s.notifyProgress(runDir, [point(21 + i)]);
    s.notifyProgress(runDir, [point(25)]); // already seen: skipped
    const steps = () => events('didAppendMetrics').flatMap((e) => (e.body?.type === 'didAppendMetrics' ? e.body.metrics.step : []));
    await until('the ten new points', () => steps().length >= 10);
    const batches = events('didAppendMetrics');
    assert.equal(batches.length, 1);
    const b = batches[0].body!;
    assert.ok(b.type === 'didAppendMetrics' && b.metrics.step.join(',') === '21,22,23,24,25,26,27,28,29,30');
    s.dispose();
  });

  it('polls metrics.jsonl: complete lines only, and a rewound file (resume) reloads the history', async () => {
    const copy = path.join(work, 'copy');
    fs.cpSync(runDir, copy, { recursive: true });
    const { s, events } = session();
    await s.add([copy]);
    const file = path.join(copy, 'metrics.jsonl');
    fs.appendFileSync(file, JSON.stringify(point(21)) + '\n' + JSON.stringify(point(22)).slice(0, 10));
    s.poll();
    const steps = () => events('didAppendMetrics').flatMap((e) => (e.body?.type === 'didAppendMetrics' ? e.body.metrics.step : []));
    // One poll reads the file once: the batch it sends holds every complete line, and only those.
    await until('the first batch', () => steps().length > 0);
    assert.deepEqual(steps(), [21]);
    fs.appendFileSync(file, JSON.stringify(point(22)).slice(10) + '\n');
    s.poll();
    await until('the second batch', () => steps().length > 1);
    assert.deepEqual(steps(), [21, 22]);
    // A resume truncates to its checkpoint (step 10) and logs again from there.
    const kept = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && JSON.parse(l).step <= 10);
    fs.writeFileSync(file, kept.join('\n') + '\n');
    s.poll();
    // The source reloads asynchronously (adapter and checkpoint files are read without blocking).
    await until('the reloaded source', () => events('didUpdateSource').length >= 1);
    assert.equal(s.snapshot().sources[0].metrics!.step.length, 10);
    s.dispose();
  });

  it('refuses malformed messages with an error reply and logs them', async () => {
    const { s, posted, logs } = session();
    await s.handleMessage({ messageId: 5, body: { type: 'eval', code: 'process.exit()' } });
    await s.handleMessage({ messageId: 6, body: { type: 'referenceRequest', sourceId: 'x', module: 'm', kind: 'truth' } });
    assert.match(posted.find((e) => e.inReplyTo === 5)!.error!, /unknown webview message type "eval"/);
    assert.match(posted.find((e) => e.inReplyTo === 6)!.error!, /unknown source x/);
    assert.ok(logs.some((l) => /rejected a webview message/.test(l)));
    s.dispose();
  });

  it('saves chart exports through the host: CSV as UTF-8 text, PNG bytes from base64; none without a saver', async () => {
    const saved: { name: string; bytes: Uint8Array }[] = [];
    const posted: Envelope<ToWebview>[] = [];
    const s = new DashboardSession({ post: (e) => posted.push(e), pollIntervalMs: 0, saveExport: async (name, bytes) => (saved.push({ name, bytes }), `/chosen/${name}`) });
    await s.handleMessage({ messageId: 1, body: { type: 'saveExport', fileName: 'Loss-r1.csv', mime: 'text/csv', data: 'run,step\nσ,1\n' } });
    // The first 8 bytes of any PNG, base64.
    await s.handleMessage({ messageId: 2, body: { type: 'saveExport', fileName: 'Loss-r1.png', mime: 'image/png', data: 'iVBORw0KGgo=' } });
    assert.equal(saved[0].name, 'Loss-r1.csv');
    assert.equal(Buffer.from(saved[0].bytes).toString('utf8'), 'run,step\nσ,1\n');
    assert.deepEqual(Array.from(saved[1].bytes), [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.deepEqual(posted.find((e) => e.inReplyTo === 2)!.body, { type: 'exportSaved', path: '/chosen/Loss-r1.png' });
    s.dispose();
    const plain = session();
    await plain.s.handleMessage({ messageId: 3, body: { type: 'saveExport', fileName: 'x.csv', mime: 'text/csv', data: '' } });
    assert.match(plain.posted.find((e) => e.inReplyTo === 3)!.error!, /cannot save files/);
    plain.s.dispose();
  });
});
