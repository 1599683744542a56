// The live dashboard: the real webview bundle in Chromium, talking to a real DashboardSession (the
// host logic behind DashboardPanel) over a bridge that stands in for VS Code's postMessage, while a
// real training run writes its folder. The curve grows, batches stay ≤ a few per second, a reload
// gets the whole history back, heatmap factors come through requests, bad messages are refused.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSafetensors } from '../../src/formats/safetensors';
import type { Envelope } from '../../src/protocol/messageHandler';
import type { ToWebview } from '../../src/protocol/webview';
import { trainRun } from '../../src/runs/trainRun';
import { DashboardSession } from '../../src/dashboard/dashboardSession';
import { divergingRgb } from '../../webview-ui/src/heatmap/colormap';
import { formatValue } from '../../webview-ui/src/series';
import { canvasPixel, chromiumAvailable, screenshot, type OpenedPage } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { Panel } from './support/panel';
import { tempDir } from './support/runs';

describe('live dashboard (DashboardSession ↔ webview in Chromium)', function () {
  this.timeout(120_000);
  let work: string;
  let session: DashboardSession;
  let opened: OpenedPage;
  const posted: { at: number; type: string }[] = [];
  const logs: string[] = [];
  const panel = new Panel((msg) => session.handleMessage(msg));

  before(async function () {
    if (!chromiumAvailable()) this.skip();
    ensureWebviewBuilt();
    work = tempDir('lora-lab-live-');
    session = new DashboardSession({
      post: (env: Envelope<ToWebview>) => {
        posted.push({ at: Date.now(), type: env.body?.type ?? (env.error ? 'error' : 'reply') });
        panel.post(env);
      },
      log: (level, message) => logs.push(`${level}: ${message}`),
      pollIntervalMs: 200,
    });
    opened = await panel.open(work);
  });

  after(async () => {
    session?.dispose();
    await opened?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('the loss curve grows while a real run trains, in batches of at most a few per second', async () => {
    const cfg = path.join(work, 'live.lora.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        name: 'live',
        kind: 'low-rank-recovery',
        model: { inFeatures: 64, outFeatures: 48, trueRank: 2 },
        lora: { r: 2, alpha: 2 },
        optimizer: { name: 'adam', lr: 0.02 },
        training: { steps: 1500, batchSize: 64, seed: 3, evalEvery: 100, checkpointEvery: 500 },
      }),
    );
    const samples: number[] = [];
    let runDir = '';
    const sampler = setInterval(() => {
      void opened.page.evaluate(() => Number(document.body.dataset.points ?? 0)).then((n) => samples.push(n), () => {});
    }, 150);
    const t0 = Date.now();
    const res = await trainRun({
      configPath: cfg,
      outDir: path.join(work, 'runs'),
      backend: 'cpu',
      keepCheckpoints: 10,
      progressIntervalMs: 100,
      onEvent: (e) => {
        if (e.type === 'didStart') {
          runDir = e.runDir;
          void session.add([e.runDir]);
        } else if (e.type === 'didProgress') {
          session.notifyProgress(e.runDir, e.points);
        }
      },
    });
    const seconds = (Date.now() - t0) / 1000;
    console.log(`      trained 1500 steps in ${seconds.toFixed(1)} s; webview point counts seen: ${[...new Set(samples)].join(', ')}`);
    assert.equal(res.status, 'completed');
    await opened.page.waitForFunction(() => document.body.dataset.points === '1500', null, { timeout: 10_000 });
    clearInterval(sampler);
    const distinct = [...new Set(samples)].filter((n) => n > 0);
    assert.ok(distinct.length >= 3, `the curve grew in steps while training (seen ${distinct.join(', ')})`);
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i] >= samples[i - 1], 'never shrinks');
    const batches = posted.filter((p) => p.type === 'didAppendMetrics');
    assert.ok(batches.length >= 2);
    assert.ok(batches.length <= Math.ceil(seconds / 0.5) + 3, `${batches.length} batches in ${seconds.toFixed(1)} s`);
    for (let i = 1; i < batches.length; i++) assert.ok(batches[i].at - batches[i - 1].at >= 450, 'batches ≥ 0.45 s apart');
    // The run's end (status, checkpoints) arrives through polling of run.json.
    await opened.page.waitForFunction(() => document.querySelector('[data-testid=run-status]')?.textContent === 'completed', null, { timeout: 10_000 });
    const metrics = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(await opened.page.textContent('[data-testid=last-loss]'), formatValue(metrics[metrics.length - 1].loss));
    assert.deepEqual(await opened.cspViolations(), []);
    assert.deepEqual(opened.pageErrors, []);
    await screenshot(opened.page, 'live-loss');
  });

  it('a reload (panel hidden and shown) gets the whole history from the host', async () => {
    await opened.page.reload();
    await opened.page.waitForFunction(() => document.body.dataset.ready === 'true');
    assert.equal(await opened.page.evaluate(() => document.body.dataset.points), '1500');
  });

  it('heatmap factors come from the host through requests', async () => {
    await opened.page.click('[data-testid=tab-heatmaps]');
    await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
    const runDir = session.paths[0];
    const file = path.join(runDir, 'checkpoints/step-1500/tensors.safetensors');
    const st = parseSafetensors(fs.readFileSync(file), file);
    const a = st.toFloat32('param/linear.lora_A');
    const b = st.toFloat32('param/linear.lora_B');
    // ΔW = B·A (s = 1) of the checkpoint, 48×64, formed here; its own scale is max |ΔW|.
    const delta = new Float64Array(48 * 64);
    for (let i = 0; i < 48; i++) for (let j = 0; j < 64; j++) delta[i * 64 + j] = Math.fround(b[i * 2] * a[j] + b[i * 2 + 1] * a[64 + j]);
    let ext = 0;
    delta.forEach((v, i) => Math.abs(v) > Math.abs(delta[ext]) && (ext = i));
    const want = Math.abs(delta[ext]);
    const scale = Number(await opened.page.getAttribute('canvas[data-testid=heatmap-delta]', 'data-max-abs'));
    assert.ok(Math.abs(scale - want) <= 1e-6 * want, `scale ${scale} vs max |ΔW| ${want}`);
    const close = (got: number[], exp: number[], what: string) => {
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[c] - exp[c]) <= 1, `${what}: rgb(${got}) vs rgb(${exp})`);
    };
    for (const [i, j] of [[5, 7], [0, 0], [47, 63], [20, 33]]) close(await canvasPixel(opened.page, 'heatmap-delta', j, i), divergingRgb(delta[i * 64 + j], want), `ΔW[${i}, ${j}]`);
    // The extreme cell is the end of the RdBu scale, whatever the colour-map code says.
    close(await canvasPixel(opened.page, 'heatmap-delta', ext % 64, Math.floor(ext / 64)), delta[ext] > 0 ? [178, 24, 43] : [33, 102, 172], 'extreme ΔW');
    await screenshot(opened.page, 'live-heatmap');
  });

  it('refuses malformed and unknown messages from the webview with an error reply', async () => {
    const before = posted.length;
    await opened.page.evaluate(`(() => {
      const api = window.acquireVsCodeApi();
      api.postMessage({ messageId: 9001, body: { type: 'runShell', command: 'rm -rf /' } });
      api.postMessage({ messageId: 9002, body: { type: 'factorsRequest', sourceId: 'nope', step: 1 } });
    })()`);
    // Wait for both replies, then one more turn of the loop so that an extra (wrong) reply would show too.
    const deadline = Date.now() + 10_000;
    while (posted.length < before + 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 0));
    const replies = posted.slice(before).map((p) => p.type);
    assert.deepEqual(replies, ['error', 'error']);
    assert.ok(logs.some((l) => /rejected a webview message: unknown webview message type "runShell"/.test(l)), logs.join('\n'));
  });
});
