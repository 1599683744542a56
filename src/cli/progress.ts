// How `lora-lab train` shows a run: a one-line progress bar (loss, eval loss, ETA) redrawn in place on a
// terminal, about ten plain lines per run otherwise (logs, CI), or every event as a JSON line (--json).
import { terminalSafe, terminalSafeJson } from './terminalText';
import type { FromWorker } from '../protocol/worker';
import type { BackendReport, MetricPoint } from '../protocol/runFormat';
import { formatCount, formatPercent } from '../shared/paramCount';
import { formatDuration, formatLoss } from '../shared/format';

export type ProgressMode = 'tty' | 'plain' | 'json';

export function describeBackend(b: BackendReport): string {
  const extras = [b.simd === undefined ? '' : b.simd ? 'SIMD' : 'no SIMD', b.threads ? `${b.threads} thread${b.threads === 1 ? '' : 's'}` : '']
    .filter(Boolean)
    .join(', ');
  return `${b.name}${extras ? ` (${extras})` : ''}${b.kernels ? ` + ${b.kernels}` : ''}`;
}

export class ProgressPrinter {
  private lastEval: number | undefined;
  private lastLoss: number | undefined;
  private nextPlainStep = 0;
  private barShown = false;

  constructor(
    private readonly mode: ProgressMode,
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly err: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Print an error line on stderr (in every mode: scripts reading --json still see why a run failed). */
  error(text: string): void {
    this.clearBar();
    this.err.write(terminalSafe(text) + '\n');
  }

  /** Print a whole line, clearing the bar first (it is redrawn on the next progress event). */
  line(text: string): void {
    if (this.mode === 'json') return;
    this.clearBar();
    // Log lines quote config values, file and tensor names: no control characters reach the terminal.
    this.out.write(terminalSafe(text) + '\n');
  }

  event(e: FromWorker): void {
    if (this.mode === 'json') {
      this.out.write(terminalSafeJson(JSON.stringify(e)) + '\n');
      if (e.type === 'log' && e.level === 'error') this.err.write(`error: ${terminalSafe(e.message)}\n`);
      return;
    }
    switch (e.type) {
      case 'didStart':
        this.line(`Backend: ${describeBackend(e.backend)}${e.backend.notes.length ? `  [${e.backend.notes.join('; ')}]` : ''}`);
        this.line(`Run folder: ${e.runDir}`);
        if (e.run.params) {
          const p = e.run.params;
          this.line(`Trainable: ${formatCount(p.trainableParams)} of ${formatCount(p.totalParams)} base parameters (${formatPercent(p.trainablePercentPeft)} of all, PEFT's figure)`);
        }
        if (e.run.baseModel) this.line(`Base model: ${e.run.baseModel} (the adapter only works on top of it)`);
        this.nextPlainStep = e.run.step;
        break;
      case 'didProgress':
        for (const p of e.points) {
          this.lastLoss = p.loss;
          if (p.evalLoss !== undefined) this.lastEval = p.evalLoss;
        }
        if (this.mode === 'tty') this.drawBar(e.step, e.totalSteps, e.etaMs);
        else this.plain(e.points, e.totalSteps, e.etaMs);
        break;
      case 'didCheckpoint':
        if (this.mode === 'plain') this.line(`checkpoint at step ${e.step}`);
        break;
      case 'log':
        if (e.level === 'error') this.error(`error: ${e.message}`);
        else this.line(e.level === 'info' ? e.message : `${e.level}: ${e.message}`);
        break;
      case 'didFinish':
        this.clearBar();
        break;
      default: {
        const never: never = e;
        return never;
      }
    }
  }

  private plain(points: MetricPoint[], total: number, etaMs?: number): void {
    const every = Math.max(1, Math.ceil(total / 10));
    for (const p of points) {
      if (p.step < this.nextPlainStep && p.step !== total) continue;
      this.nextPlainStep = (Math.floor(p.step / every) + 1) * every;
      const evalPart = p.evalLoss !== undefined ? ` eval ${formatLoss(p.evalLoss)}` : '';
      const eta = etaMs !== undefined && p.step < total ? ` ETA ${formatDuration(etaMs)}` : '';
      this.line(`step ${p.step}/${total} loss ${formatLoss(p.loss)}${evalPart} lr ${p.lr.toExponential(2)}${eta}`);
    }
  }

  private drawBar(step: number, total: number, etaMs?: number): void {
    const cols = this.out.columns || 80;
    const info = ` ${step}/${total} loss ${formatLoss(this.lastLoss)} eval ${formatLoss(this.lastEval)} ETA ${etaMs === undefined ? '?' : formatDuration(etaMs)}`;
    const width = Math.max(10, Math.min(40, cols - info.length - 3));
    const filled = total > 0 ? Math.round((width * step) / total) : 0;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    this.out.write(`\r\x1b[2K${(bar + info).slice(0, cols - 1)}`);
    this.barShown = true;
  }

  private clearBar(): void {
    if (this.barShown) {
      this.out.write('\r\x1b[2K');
      this.barShown = false;
    }
  }
}
