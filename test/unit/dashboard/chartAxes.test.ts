import * as assert from 'node:assert/strict';
import { decadeFilter, formatAxis } from '../../../webview-ui/src/chartAxes';

/** uPlot's splits on a log axis from 10^lo to 10^hi: 1…9 times each power of ten, then 10^hi. */
function logSplits(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = lo; e < hi; e++) for (let k = 1; k < 10; k++) out.push(Number((k * 10 ** e).toPrecision(12)));
  out.push(10 ** hi);
  return out;
}

describe('log-scale axis labels and grid lines (chartAxes)', () => {
  const u = { bbox: { height: 300, left: 0, top: 0, width: 800 } };

  it('within one decade: grid at every split, labels at 1, 2 and 5 only (not just 1 and 10)', () => {
    const splits = logSplits(0, 1);
    assert.deepEqual(decadeFilter(u, splits, false), splits);
    assert.deepEqual(decadeFilter(u, splits, true).filter((v) => v !== null), [1, 2, 5, 10]);
    // Less than a decade shown (2…10): the same labels that are on the axis.
    assert.deepEqual(decadeFilter(u, splits.slice(1), true).filter((v) => v !== null), [2, 5, 10]);
  });

  it('over many decades: powers of ten only, every k-th when they would be closer than ~18 px', () => {
    const splits = logSplits(-13, 0);
    const labels = decadeFilter(u, splits, true).filter((v) => v !== null) as number[];
    assert.deepEqual(decadeFilter(u, splits, false), decadeFilter(u, splits, true));
    assert.ok(labels.every((v) => Number.isInteger(Math.round(Math.log10(v) * 1e9) / 1e9)), labels.join(' '));
    assert.ok(labels.length >= 5 && labels.length <= 300 / 18, `${labels.length} labels`);
    assert.deepEqual(labels.map(formatAxis).slice(-2), ['0.1', '1']);
  });
});
