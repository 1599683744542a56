// Shared helpers for the extension-host suite: the extension's API, the test workspace, and polling
// (no fixed sleeps: every wait is for a condition, with a deadline).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LoraLabApi } from '../../src/extension';
import type { AdapterNode } from '../../src/views/adapterTree';

export const EXTENSION_ID = 'lora-lab.lora-lab';

export async function api(): Promise<LoraLabApi> {
  const ext = vscode.extensions.getExtension<LoraLabApi>(EXTENSION_ID);
  if (!ext) throw new Error(`extension ${EXTENSION_ID} is not installed in this host`);
  return ext.isActive ? ext.exports : ext.activate();
}

export function workspaceDir(): string {
  const f = vscode.workspace.workspaceFolders?.[0];
  if (!f) throw new Error('the suite needs the example workspace open');
  return f.uri.fsPath;
}

export function wsUri(...parts: string[]): vscode.Uri {
  return vscode.Uri.file(path.join(workspaceDir(), ...parts));
}

/** Polls `probe` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function hoverText(hovers: vscode.Hover[] | undefined): string {
  return (hovers ?? [])
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : ''))
    .join('\n---\n');
}

export async function hoverAt(uri: vscode.Uri, needle: string, delta = 0): Promise<string> {
  const doc = await vscode.workspace.openTextDocument(uri);
  const off = doc.getText().indexOf(needle);
  if (off < 0) throw new Error(`${needle} not found in ${uri.fsPath}`);
  const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, doc.positionAt(off + delta));
  return hoverText(hovers);
}

/** The adapter rows of the Adapters view, under its groups (runs, formats, unreadable or not LoRA). */
export async function adapterRows(a: LoraLabApi): Promise<AdapterNode[]> {
  const rows: AdapterNode[] = [];
  for (const n of await a.adapters.getChildren()) rows.push(...(n.kind === 'group' ? await a.adapters.getChildren(n) : [n]));
  return rows;
}
