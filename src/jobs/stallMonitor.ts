// Measures how long the extension host's event loop is blocked while a job runs. Training lives in a
// worker thread, so the host should never stall for long; the issue asks to keep the longest stall under
// 50 ms and to prove it. We use a self-rescheduling timer: the lateness of each tick is a stall.
import { performance } from 'node:perf_hooks';
import { Disposable, toDisposable } from '../util/disposable';

export class StallMonitor extends Disposable {
  private _maxStallMs = 0;
  private _ticks = 0;
  private _expected = 0;
  private _timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 10) {
    super();
    this._expected = performance.now() + intervalMs;
    const tick = () => {
      const now = performance.now();
      const late = now - this._expected;
      if (late > this._maxStallMs) this._maxStallMs = late;
      this._ticks++;
      this._expected = now + this.intervalMs;
      this._timer = setTimeout(tick, this.intervalMs);
      // A monitor must not keep the host alive on shutdown.
      this._timer.unref?.();
    };
    this._timer = setTimeout(tick, intervalMs);
    this._timer.unref?.();
    this._register(toDisposable(() => clearTimeout(this._timer)));
  }

  /** Longest delay, in ms, between when a tick was due and when it ran. */
  get maxStallMs(): number {
    return Math.max(0, this._maxStallMs);
  }

  get ticks(): number {
    return this._ticks;
  }
}
