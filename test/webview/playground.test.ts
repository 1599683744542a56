// The playground ("Try Adapter"): the real webview bundle in Chromium under the panel's CSP, talking to a
// real PlaygroundHost (the logic behind PlaygroundPanel) over a bridge that stands in for VS Code's
// postMessage, with the real playground worker (src/worker/playgroundWorker.ts through tsx) generating
// from the PEFT fixture's Llama with and without its adapter. Tokens appear one at a time, the text and
// the log-probabilities shown are those the engine produced, Stop cancels, a reload gets the page back.
// Screenshots (light and dark) go to test/.artifacts/.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Page } from 'playwright-core';
import type { FromPlaygroundWorker, ToPlaygroundWebview } from '../../src/protocol/playground';
import { PlaygroundHost, type PlaygroundWorkerPort } from '../../src/playground/host';
import { panelPageHtml } from '../../src/dashboard/webviewPage';
import { displayPiece, formatLogprob } from '../../webview-ui/src/playground/format';
import { chromiumAvailable, openPage, screenshot, type OpenedPage } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { VSCODE_API_STUB } from './support/panel';
import { tempDir } from './support/runs';

const ROOT = path.resolve(__dirname, '..', '..');
const TSX_CJS = path.join(ROOT, 'node_modules/tsx/dist/cjs/index.cjs');
const CASE = path.join(ROOT, 'test/fixtures/peft/llama-tiny-qkvo-r8');

function realWorker(): PlaygroundWorkerPort {
  const w = new Worker(path.join(ROOT, 'src/worker/playgroundWorker.ts'), { execArgv: ['--require', TSX_CJS] });
  return {
    postMessage: (m) => w.postMessage(m),
    onMessage: (l) => w.on('message', (m: FromPlaygroundWorker) => l(m)),
    onExit: (l) => w.on('exit', l),
    terminate: () => void w.terminate(),
  };
}

/** PlaygroundPanel's page, with file: standing in for webview.cspSource. */
function pageHtml(dir: string): string {
  const file = path.join(dir, 'playground.html');
  fs.writeFileSync(file, panelPageHtml('playground', 'file:', (f) => `file://${ROOT}/dist/webview/${f}`, 'cGxheWdyb3VuZC1ub25jZQ'));
  return file;
}

interface Bridge {
  opened: OpenedPage;
  host: PlaygroundHost;
  /** Everything the host posted to the page. */
  posted: ToPlaygroundWebview[];
  logs: string[];
  close(): Promise<void>;
}

async function openPlayground(dir: string, adapter: boolean, colorScheme: 'light' | 'dark' = 'light'): Promise<Bridge> {
  const posted: ToPlaygroundWebview[] = [];
  const logs: string[] = [];
  let page: Page | undefined;
  const toPage = (m: ToPlaygroundWebview) => {
    posted.push(m);
    // One evaluate per message: each arrives in the page as its own task, as postMessage does in VS Code.
    void page?.evaluate((j) => window.dispatchEvent(new MessageEvent('message', { data: JSON.parse(j) })), JSON.stringify(m)).catch(() => {});
  };
  const host = new PlaygroundHost(realWorker(), path.join(CASE, 'base'), adapter ? path.join(CASE, 'adapter') : undefined, { post: toPage, log: (l, m) => logs.push(`${l}: ${m}`) });
  const opened = await openPage(`file://${pageHtml(dir)}`, {
    colorScheme,
    width: 1280,
    height: 900,
    setup: async (p) => {
      page = p;
      await p.exposeFunction('__toHost', (json: string) => host.handleMessage(JSON.parse(json)));
      await p.addInitScript(VSCODE_API_STUB);
      await p.addInitScript(`
        // Every distinct chip count each column went through, to see tokens arrive one by one.
        window.__counts = { base: [], adapter: [] };
        new MutationObserver(() => {
          for (const side of ['base', 'adapter']) {
            const n = document.querySelectorAll('[data-testid="tokens-' + side + '"] .chip').length;
            const seen = window.__counts[side];
            if (n > 0 && seen[seen.length - 1] !== n) seen.push(n);
          }
        }).observe(document, { subtree: true, childList: true });`);
    },
  });
  await opened.page.waitForFunction(() => /^Ready/.test(document.querySelector('[data-testid="status"]')?.textContent ?? ''), null, { timeout: 30_000 });
  return {
    opened,
    host,
    posted,
    logs,
    async close() {
      host.dispose();
      await opened.close();
    },
  };
}

async function setForm(page: Page, v: { prompt: string; maxTokens: number; temperature?: number; topK?: number; seed?: number; ignoreEos?: boolean }): Promise<void> {
  await page.fill('[data-testid="prompt"]', v.prompt);
  await page.fill('[data-testid="max-tokens"]', String(v.maxTokens));
  await page.fill('[data-testid="temperature"]', String(v.temperature ?? 0));
  await page.fill('[data-testid="top-k"]', String(v.topK ?? 0));
  await page.fill('[data-testid="seed"]', String(v.seed ?? 0));
  await page.setChecked('[data-testid="ignore-eos"]', v.ignoreEos ?? true);
}

const finished = (page: Page) => page.waitForFunction(() => document.body.dataset.running === 'false' && document.querySelectorAll('.side').length > 0, null, { timeout: 60_000 });

describe('playground webview (PlaygroundHost + worker ↔ page in Chromium)', function () {
  this.timeout(120_000);
  let work: string;

  before(function () {
    if (!chromiumAvailable()) {
      console.log('    chromium not found at /usr/bin/chromium: skipping the playground webview test');
      this.skip();
    }
    ensureWebviewBuilt();
    work = tempDir('lora-lab-playground-');
  });
  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  describe('base and base + adapter side by side', () => {
    let b: Bridge;
    before(async () => {
      b = await openPlayground(work, true);
    });
    after(async () => b?.close());

    it('streams both columns token by token and shows the engine’s text and log-probabilities', async () => {
      const { page } = b.opened;
      assert.match((await page.textContent('[data-testid="model"]')) ?? '', /llama-tiny-qkvo-r8\/base \(llama, vocabulary 256, UTF-8 bytes as tokens\)/);
      assert.match((await page.textContent('[data-testid="adapter"]')) ?? '', /llama-tiny-qkvo-r8\/adapter/);
      await setForm(page, { prompt: 'LoRA', maxTokens: 24 });
      await page.click('[data-testid="generate"]');
      await finished(page);

      const n = 24;
      for (const side of ['base', 'adapter'] as const) {
        const tokens = b.posted.flatMap((m) => (m.type === 'didTokens' && m.side === side ? m.tokens : []));
        assert.equal(tokens.length, n, `${side}: tokens posted`);
        // Streaming: the column went through every count 1, 2, …, n (one token per message, each drawn).
        const counts = (await page.evaluate((s) => (window as unknown as { __counts: Record<string, number[]> }).__counts[s], side)) as number[];
        assert.deepEqual(counts, Array.from({ length: n }, (_, i) => i + 1), `${side}: chip counts seen`);
        // The text is the prompt and the streamed deltas; each chip shows its token's log-prob.
        assert.equal(await page.textContent(`[data-testid="text-${side}"]`), tokens.map((t) => t.text).join(''));
        const chips = await page.$$eval(`[data-testid="tokens-${side}"] .chip`, (els) => els.map((e) => ({ lp: Number((e as HTMLElement).dataset.logprob), shown: e.querySelector('.lp')!.textContent, id: Number((e as HTMLElement).dataset.id) })));
        chips.forEach((c, i) => {
          assert.equal(c.id, tokens[i].id);
          assert.ok(Math.abs(c.lp - tokens[i].logprob) < 1e-6, `${side} chip ${i}: data-logprob ${c.lp} vs ${tokens[i].logprob}`);
          assert.equal(c.shown, formatLogprob(tokens[i].logprob));
        });
        const mean = tokens.reduce((a, t) => a + t.logprob, 0) / n;
        assert.equal(await page.textContent(`[data-testid="stats-${side}"]`), `${n} tokens · mean log p ${formatLogprob(mean)} · perplexity ${Math.exp(-mean).toFixed(1)} · max tokens reached`);
      }
      // Greedy from the same prompt: the adapter changes what the model says.
      const ids = (side: string) => b.posted.flatMap((m) => (m.type === 'didTokens' && m.side === side ? m.tokens.map((t) => t.id) : []));
      assert.notDeepEqual(ids('base'), ids('adapter'));
      assert.equal(await page.textContent('[data-testid="mode"]'), 'greedy');
    });

    it('hovering a token lists the most likely tokens at that step, the chosen one marked', async () => {
      const { page } = b.opened;
      await page.hover('[data-testid="tokens-adapter"] .chip:nth-child(3)');
      const t = b.posted.flatMap((m) => (m.type === 'didTokens' && m.side === 'adapter' ? m.tokens : []))[2];
      const rows = await page.$$eval('[data-testid="alternatives"] tbody tr', (trs) => trs.map((tr) => ({ cells: Array.from(tr.querySelectorAll('td')).map((td) => td.textContent), chosen: tr.classList.contains('chosen') })));
      assert.equal(rows.length, 5);
      rows.forEach((r, i) => {
        assert.equal(r.cells[0], displayPiece(t.top[i].piece));
        assert.equal(r.cells[1], formatLogprob(t.top[i].logprob));
        assert.equal(r.chosen, t.top[i].id === t.id);
      });
      // Greedy: the chosen token is the most likely one.
      assert.ok(rows[0].chosen);
      assert.match((await page.textContent('[data-testid="detail"]')) ?? '', /Base \+ adapter, token 3:/);
      await screenshot(page, 'playground-light');
      assert.deepEqual(await b.opened.cspViolations(), []);
    });

    it('sampling settings travel to the engine: the same seed gives the same text, top-k stays in the k best', async () => {
      const { page } = b.opened;
      const run = async (seed: number) => {
        const before = b.posted.length;
        await setForm(page, { prompt: 'Hi', maxTokens: 12, temperature: 1.5, topK: 3, seed });
        await page.click('[data-testid="generate"]');
        await finished(page);
        return b.posted.slice(before).flatMap((m) => (m.type === 'didTokens' && m.side === 'adapter' ? m.tokens : []));
      };
      const a = await run(5);
      const again = await run(5);
      assert.deepEqual(a.map((t) => t.id), again.map((t) => t.id));
      for (const t of a) assert.ok(t.top.slice(0, 3).some((c) => c.id === t.id), `token ${t.id} outside the top 3`);
      assert.equal(await page.textContent('[data-testid="mode"]'), 'sampling, T = 1.5, top-3, seed 5');
    });

    it('Stop cancels both sides after their current token', async () => {
      const { page } = b.opened;
      await setForm(page, { prompt: 'LoRA', maxTokens: 1000 });
      await page.click('[data-testid="generate"]');
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="tokens-adapter"] .chip').length >= 3);
      await page.click('[data-testid="stop"]');
      await finished(page);
      for (const side of ['base', 'adapter']) {
        assert.match((await page.textContent(`[data-testid="stats-${side}"]`)) ?? '', /· stopped$/);
        const n = await page.$$eval(`[data-testid="tokens-${side}"] .chip`, (e) => e.length);
        assert.ok(n >= 3 && n < 1000, `${side}: ${n} tokens before the stop`);
      }
    });

    it('a reloaded page gets the model and the last generation back; bad input is named', async () => {
      const { page } = b.opened;
      const before = await page.$$eval('[data-testid="tokens-adapter"] .chip', (e) => e.length);
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.ready === 'true' && document.body.dataset.running === 'false');
      assert.match((await page.textContent('[data-testid="status"]')) ?? '', /^Ready/);
      assert.equal(await page.$$eval('[data-testid="tokens-adapter"] .chip', (e) => e.length), before);
      // The form remembers its last settings (vscode.setState).
      assert.equal(await page.inputValue('[data-testid="max-tokens"]'), '1000');
      await page.fill('[data-testid="top-k"]', '-2');
      await page.click('[data-testid="generate"]');
      assert.equal(await page.textContent('[data-testid="form-error"]'), 'Top-k should be a whole number from 0 to 1000000');
      // The host refuses a hostile message from the page, saying which field is wrong.
      await page.evaluate(() => (window as unknown as { __toHost(j: string): void }).__toHost(JSON.stringify({ type: 'generate', request: { prompt: 'x', maxTokens: 1e9, temperature: 0, topK: 0, seed: 0, ignoreEos: false } })));
      assert.ok(b.logs.some((l) => /maxTokens should be an integer in \[1, 1024\], got 1000000000/.test(l)), b.logs.join('\n'));
    });
  });

  it('dark theme, base model only: one column', async () => {
    const b = await openPlayground(work, false, 'dark');
    try {
      const { page } = b.opened;
      assert.match((await page.textContent('[data-testid="adapter"]')) ?? '', /Adapter: none/);
      await setForm(page, { prompt: 'LoRA', maxTokens: 16 });
      await page.click('[data-testid="generate"]');
      await finished(page);
      assert.equal(await page.$$eval('.side', (e) => e.length), 1);
      assert.equal(await page.$$eval('[data-testid="tokens-base"] .chip', (e) => e.length), 16);
      await page.focus('[data-testid="tokens-base"] .chip:nth-child(2)');
      await screenshot(page, 'playground-dark');
    } finally {
      await b.close();
    }
  });

  it('a model folder that cannot load says why in the page', async () => {
    const posted: ToPlaygroundWebview[] = [];
    const missing = path.join(work, 'no-model');
    const host = new PlaygroundHost(realWorker(), missing, undefined, { post: (m) => posted.push(m), log: () => {} });
    try {
      const deadline = Date.now() + 30_000;
      while (!posted.some((m) => m.type === 'didFailLoad') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const fail = posted.find((m) => m.type === 'didFailLoad');
      assert.ok(fail && fail.type === 'didFailLoad');
      assert.equal(fail.message, `${missing}: no such folder; expected a Hugging Face model (config.json + model.safetensors)`);
    } finally {
      host.dispose();
    }
  });
});
