// The host's stall measurement (src/jobs/stallMonitor.ts) is plain Node: checked here without VS Code.
// The stall is the host's own CPU work between ticks, so the bounds below are on CPU time, which a loaded
// machine does not stretch; the waits are for ticks, not for wall-clock time.
import assert from 'node:assert/strict';
import { StallMonitor } from '../../../src/jobs/stallMonitor';
import { until } from '../../support/until';

describe('jobs/StallMonitor', () => {
  it('reports a blocked event loop as a stall of about its length', async () => {
    const m = new StallMonitor();
    await until('the first ticks', () => m.ticks >= 2);
    // Block the event loop with 80 ms of CPU work (not wall time: a loaded machine lends less CPU).
    const start = process.cpuUsage();
    for (;;) {
      const u = process.cpuUsage(start);
      if ((u.user + u.system) / 1000 >= 80) break;
    }
    const after = m.ticks;
    await until('a tick after the blocked stretch', () => m.ticks > after);
    m.dispose();
    assert.ok(m.maxStallMs >= 75 && m.maxStallMs < 400, `stall ${m.maxStallMs} (${m.method})`);
    assert.ok(m.stalls.some((s) => s.blockedMs >= 75));
  });

  it('reports an idle loop as not stalled, and stops ticking once disposed', async () => {
    const m = new StallMonitor();
    await until('10 idle ticks', () => m.ticks >= 10);
    assert.ok(m.maxStallMs < 20, `idle loop measured ${m.maxStallMs} ms busy`);
    m.dispose();
    const t = m.ticks;
    // A second monitor on the same 10 ms interval ticking 5 times spans 5 intervals of the first.
    const probe = new StallMonitor();
    await until('a second monitor to tick 5 times', () => probe.ticks >= 5);
    probe.dispose();
    assert.equal(m.ticks, t);
  });
});
