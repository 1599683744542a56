// The dashboard panel outside VS Code: the real webview bundle under the panel's CSP in Chromium, and
// a stand-in for acquireVsCodeApi() that bridges postMessage to a host in Node (a DashboardSession).
// Like VS Code's, its getState/setState state survives a reload of the page (sessionStorage).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import type { Envelope } from '../../../src/protocol/messageHandler';
import type { ToWebview } from '../../../src/protocol/webview';
import { panelPageHtml } from '../../../src/dashboard/webviewPage';
import { openPage, type OpenedPage } from './browser';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * The page's acquireVsCodeApi(): postMessage goes to window.__toHost (exposed by the test), and
 * getState/setState survive a reload (sessionStorage), as in VS Code. A string, not a function: tsx
 * would wrap named functions in a `__name` helper the page lacks.
 */
export const VSCODE_API_STUB = `
  let state;
  window.acquireVsCodeApi = () => ({
    postMessage: (m) => window.__toHost(JSON.stringify(m)),
    getState: () => state ?? JSON.parse(sessionStorage.getItem('vscode-state') ?? 'null'),
    setState: (s) => { state = s; sessionStorage.setItem('vscode-state', JSON.stringify(s)); },
  });`;

/** DashboardPanel's page, with file: standing in for webview.cspSource. */
function panelHtml(dir: string): string {
  const file = path.join(dir, 'panel.html');
  fs.writeFileSync(file, panelPageHtml('dashboard', 'file:', (f) => `file://${ROOT}/dist/webview/${f}`, 'dGVzdC1ub25jZS0xMjM0'));
  return file;
}

/** JSON with Float32Array kept (VS Code's postMessage carries typed arrays too). */
function encode(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x instanceof Float32Array ? { __f32: Array.from(x) } : x));
}

export class Panel {
  private page: Page | undefined;

  /** `toHost` gets every message the webview posts (DashboardSession.handleMessage). */
  constructor(private readonly toHost: (msg: unknown) => Promise<void> | void) {}

  /** Sends one envelope to the webview (DashboardSessionOptions.post). */
  readonly post = (env: Envelope<ToWebview>): void => {
    const page = this.page;
    if (!page) return;
    void page
      .evaluate((j) => {
        const data = JSON.parse(j, (_k, x) => (x && typeof x === 'object' && Array.isArray(x.__f32) ? Float32Array.from(x.__f32) : x));
        window.dispatchEvent(new MessageEvent('message', { data }));
      }, encode(env))
      .catch(() => {});
  };

  /** Opens the page (written to `dir`) and waits for the dashboard to be ready. */
  open(dir: string): Promise<OpenedPage> {
    return openPage(`file://${panelHtml(dir)}`, {
      setup: async (p) => {
        this.page = p;
        await p.exposeFunction('__toHost', (json: string) => this.toHost(JSON.parse(json)));
        await p.addInitScript(VSCODE_API_STUB);
      },
    });
  }
}

/** What the webview last passed to setState (what VS Code would hand back after a reload). */
export function savedState<T>(page: Page): Promise<T | null> {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem('vscode-state') ?? 'null'));
}
