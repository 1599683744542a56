// Headless Debian Chromium through playwright-core, a fresh profile per launch, with a listener for
// CSP violations and page errors installed before any page script runs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.LORA_LAB_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(__dirname, '..', '..', '.artifacts');

export interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** `securitypolicyviolation` events seen by the page: "directive blockedURI". */
  cspViolations(): Promise<string[]>;
  pageErrors: string[];
  consoleErrors: string[];
  close(): Promise<void>;
}

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM);
}

export async function openPage(
  url: string,
  opts: { colorScheme?: 'light' | 'dark'; width?: number; height?: number; setup?: (page: Page) => Promise<void> } = {},
): Promise<OpenedPage> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: opts.width ?? 1200, height: opts.height ?? 900 },
    colorScheme: opts.colorScheme ?? 'light',
    offline: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  await page.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  try {
    await opts.setup?.(page);
    await page.goto(url);
    await page.waitForFunction(() => document.body?.dataset.ready === 'true' || document.body?.dataset.ready === 'error', null, { timeout: 30_000 });
  } catch (e) {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    page,
    context,
    pageErrors,
    consoleErrors,
    cspViolations: () => page.evaluate(() => (window as unknown as { __csp: string[] }).__csp.slice()),
    /** Closes the browser; a page error seen at any time fails the test that opened it. */
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
      if (pageErrors.length) throw new Error(`page errors in ${url}: ${pageErrors.slice(0, 5).join(' | ')}`);
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** RGBA of one canvas pixel (canvas pixels are heatmap cells). */
export function canvasPixel(page: Page, testId: string, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([id, px, py]) => {
      const c = document.querySelector(`canvas[data-testid="${id}"]`) as HTMLCanvasElement | null;
      if (!c) throw new Error(`no canvas ${id}`);
      return Array.from(c.getContext('2d')!.getImageData(px as number, py as number, 1, 1).data);
    },
    [testId, x, y] as const,
  );
}
