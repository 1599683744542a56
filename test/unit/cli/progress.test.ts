import * as assert from 'node:assert/strict';
import type { MetricPoint } from '../../../src/protocol/runFormat';
import type { FromWorker } from '../../../src/protocol/worker';
import { ProgressPrinter, describeBackend } from '../../../src/cli/progress';
import { formatDuration, formatLoss } from '../../../src/shared/format';

/** A write-only stand-in for process.stdout that records what was written. */
function sink(columns = 80) {
  const chunks: string[] = [];
  const stream = { columns, write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

const pt = (step: number, evalLoss?: number): MetricPoint => ({ step, loss: 1 / step, lr: 1e-3, gradNorm: 1, elapsedMs: step, ...(evalLoss !== undefined ? { evalLoss } : {}) });
const progress = (step: number, points: MetricPoint[], etaMs?: number): FromWorker => ({ type: 'didProgress', runDir: '/r', step, totalSteps: 100, points, etaMs });

describe('cli/progress', () => {
  it('formats durations, losses and backends', () => {
    assert.equal(formatDuration(0), '0 s');
    assert.equal(formatDuration(61_400), '1 min 01 s');
    assert.equal(formatDuration(3_723_000), '1 h 02 min');
    assert.equal(formatLoss(0.123456), '0.1235');
    assert.equal(formatLoss(1.5e-6), '1.500e-6');
    assert.equal(formatLoss(NaN), 'NaN');
    assert.equal(formatLoss(undefined), '-');
    assert.equal(describeBackend({ name: 'wasm', simd: true, threads: 1, notes: [] }), 'wasm (SIMD, 1 thread)');
    assert.equal(describeBackend({ name: 'cpu', notes: [] }), 'cpu');
  });

  it('plain mode prints about ten lines per run, always the last step, with eval and ETA', () => {
    const s = sink();
    const p = new ProgressPrinter('plain', s.stream);
    for (let step = 1; step <= 100; step += 5) {
      const pts = [1, 2, 3, 4, 5].map((i) => pt(step + i - 1, (step + i - 1) % 50 === 0 ? 0.5 : undefined));
      p.event(progress(step + 4, pts, 1000));
    }
    const lines = s.text().trim().split('\n');
    assert.ok(lines.length >= 10 && lines.length <= 12, lines.join('\n'));
    assert.match(lines[lines.length - 1], /^step 100\/100 loss 0\.01000 eval 0\.5000 lr 1\.00e-3$/);
    assert.match(lines[0], /^step 1\/100 .* ETA 1 s$/);
  });

  it('tty mode redraws one bar in place and clears it before other lines', () => {
    const s = sink(60);
    const p = new ProgressPrinter('tty', s.stream);
    p.event(progress(50, [pt(50, 0.25)], 90_000));
    p.event({ type: 'log', level: 'warn', message: 'careful' });
    const out = s.text();
    assert.match(out, /^\r\x1b\[2K\[#+\.+\] 50\/100 loss 0\.02000 eval 0\.2500 ETA 1 min 30 s/);
    assert.ok(out.endsWith('\r\x1b[2Kwarn: careful\n'));
    const bar = out.split('\r\x1b[2K')[1];
    assert.ok(bar.length <= 59, 'fits the terminal width');
  });

  it('json mode writes every event as one JSON line and nothing else', () => {
    const s = sink();
    const p = new ProgressPrinter('json', s.stream);
    const e = progress(3, [pt(3)], 10);
    p.event(e);
    p.line('ignored in json mode');
    assert.deepEqual(JSON.parse(s.text()), e);
  });
});
