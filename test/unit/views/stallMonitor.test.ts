// The host's stall measurement (src/jobs/stallMonitor.ts) is plain Node: checked here without VS Code.
import assert from 'node:assert/strict';
import { StallMonitor } from '../../../src/jobs/stallMonitor';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('jobs/StallMonitor', () => {
  it('reports a blocked event loop as a stall of about its length', async () => {
    const m = new StallMonitor();
    await sleep(50);
    // Block the event loop with 80 ms of CPU work (not wall time: a loaded machine lends less CPU).
    const start = process.cpuUsage();
    for (;;) {
      const u = process.cpuUsage(start);
      if ((u.user + u.system) / 1000 >= 80) break;
    }
    await sleep(30);
    m.dispose();
    assert.ok(m.maxStallMs >= 75 && m.maxStallMs < 400, `stall ${m.maxStallMs} (${m.method})`);
    assert.ok(m.stalls.some((s) => s.blockedMs >= 75));
  });

  it('reports an idle loop as not stalled, and stops ticking once disposed', async () => {
    const m = new StallMonitor();
    await sleep(150);
    assert.ok(m.ticks >= 3, `only ${m.ticks} ticks`);
    assert.ok(m.maxStallMs < 20, `idle loop measured ${m.maxStallMs} ms busy`);
    m.dispose();
    const t = m.ticks;
    await sleep(50);
    assert.equal(m.ticks, t);
  });
});
