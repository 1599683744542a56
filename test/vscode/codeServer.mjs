// Starts code-server (a real VS Code 1.100.3 server) and Debian's Chromium (through playwright-core) in
// throw-away folders, as ../shared/REAL-VSCODE-TESTS.md describes. Used by the extension-host suite and the
// Playwright UI tests.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { installCodeServer } from './installCodeServer.mjs';

export const CHROMIUM = process.env.LORA_LAB_CHROMIUM ?? '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Fresh HOME/XDG/user-data/extensions folders so nothing touches ~/.config/code-server. */
export function makeSandbox(label, { trust = false } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lora-lab-${label}-`));
  const dirs = { root, home: path.join(root, 'home'), userData: path.join(root, 'user-data'), extensions: path.join(root, 'extensions') };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  // No welcome page, no trust prompt, no telemetry noise; our tests turn these on where they need them.
  fs.mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  fs.writeFileSync(
    path.join(dirs.userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoUpdate': false,
        'extensions.autoCheckUpdates': false,
        'security.workspace.trust.enabled': trust,
        'security.workspace.trust.startupPrompt': 'never',
        'chat.disableAIFeatures': true,
        'workbench.enableExperiments': false,
        'update.mode': 'none',
      },
      null,
      2,
    ),
  );
  return dirs;
}

function sandboxEnv(box, extra = {}) {
  return {
    ...process.env,
    HOME: box.home,
    XDG_CONFIG_HOME: path.join(box.home, '.config'),
    XDG_DATA_HOME: path.join(box.home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(box.home, '.cache'),
    ...extra,
  };
}

/** `code-server --install-extension x.vsix` into the sandbox's extensions folder (what a user gets). */
export function installVsix(box, vsix) {
  const entry = installCodeServer();
  execFileSync(process.execPath, [entry, '--user-data-dir', box.userData, '--extensions-dir', box.extensions, '--install-extension', vsix, '--force'], {
    env: sandboxEnv(box),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
  const installed = fs.readdirSync(box.extensions).filter((n) => !n.startsWith('.') && n !== 'extensions.json');
  if (installed.length === 0) throw new Error(`installing ${vsix} left ${box.extensions} empty`);
  return installed;
}

/**
 * Starts code-server on a random free loopback port; resolves when /healthz answers.
 * Returns { url, port, stop(), output() }.
 */
export async function startCodeServer(box, { env = {}, trust = false } = {}) {
  const entry = installCodeServer();
  const port = await freePort();
  const args = [
    entry,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    '--user-data-dir', box.userData,
    '--extensions-dir', box.extensions,
    '--ignore-last-opened',
  ];
  if (!trust) args.push('--disable-workspace-trust');
  let out = '';
  const child = spawn(process.execPath, args, { env: sandboxEnv(box, env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (out += b));
  let exited = null;
  child.on('exit', (code) => (exited = code));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`code-server exited (${exited}) before it was ready:\n${out}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`code-server did not answer ${url}/healthz within 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    output: () => out,
    async stop() {
      if (exited !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** Debian's Chromium; playwright-core gives it a fresh empty profile (its own --user-data-dir). */
export async function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The workbench URL for a folder, optionally with an automation payload (extension tests). */
export function workbenchUrl(server, folder, payload) {
  const u = new URL(server.url + '/');
  u.searchParams.set('folder', folder);
  if (payload) u.searchParams.set('payload', JSON.stringify(payload));
  return u.toString();
}

export function remoteUri(server, absPath) {
  return `vscode-remote://127.0.0.1:${server.port}${absPath}`;
}

/** Navigate away before closing, or the server keeps the extension host for its reconnection grace period. */
export async function closePage(page) {
  try {
    await page.goto('about:blank', { timeout: 10_000 });
  } catch {
    // already gone
  }
  await page.close().catch(() => undefined);
}
