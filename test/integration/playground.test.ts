// Try Adapter in the extension host: the command finds the adapter's base model in the workspace, opens
// the playground panel, and its worker (dist/playgroundWorker.js) loads the model and streams tokens from
// the base and from base + adapter, without tfjs ever loading on the host.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ToPlaygroundWebview } from '../../src/protocol/playground';
import { adapterRows, api, waitFor, workspaceDir } from './helpers';

/** The part of PlaygroundPanel this suite uses (the command returns the panel). */
interface PlaygroundPanelLike {
  readonly modelDir: string;
  readonly adapterDir?: string;
  readonly history: readonly ToPlaygroundWebview[];
  generate(request: { prompt: string; maxTokens: number; temperature: number; topK: number; seed: number; ignoreEos: boolean }): number;
  dispose(): void;
}

const restricted = process.env.LORA_LAB_RESTRICTED === '1';

(restricted ? describe.skip : describe)('Try Adapter (playground)', () => {
  it('generates from the base and base + adapter side by side in a worker; the host never loads tfjs', async () => {
    const a = await api();
    const node = (await adapterRows(a)).find((n) => n.kind === 'adapter' && n.info.label === 'llama-tiny-r8');
    assert.ok(node, 'the llama-tiny-r8 adapter is listed');
    const panel = await vscode.commands.executeCommand<PlaygroundPanelLike>('loraLab.tryAdapter', node);
    assert.ok(panel, 'the command returns the panel');
    try {
      assert.equal(panel.modelDir, path.join(workspaceDir(), 'models', 'llama-tiny'));
      assert.equal(panel.adapterDir, path.join(workspaceDir(), 'adapters', 'llama-tiny-r8'));
      await waitFor('a "Try llama-tiny-r8" tab', () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.label === 'Try llama-tiny-r8'));
      const loaded = await waitFor('the model to load in the worker', () => panel.history.find((m) => m.type === 'didLoad' || m.type === 'didFailLoad'), 60_000);
      assert.equal(loaded.type, 'didLoad', loaded.type === 'didFailLoad' ? loaded.message : '');
      panel.generate({ prompt: 'LoRA', maxTokens: 8, temperature: 0, topK: 0, seed: 0, ignoreEos: true });
      await waitFor('both sides to finish', () => panel.history.filter((m) => m.type === 'didFinishSide').length === 2, 60_000);
      for (const side of ['base', 'adapter'] as const) {
        const tokens = panel.history.flatMap((m) => (m.type === 'didTokens' && m.side === side ? m.tokens : []));
        assert.equal(tokens.length, 8, side);
        assert.ok(tokens.every((t) => t.logprob <= 0 && t.top.length === 5), side);
        assert.deepEqual(panel.history.find((m) => m.type === 'didFinishSide' && m.side === side), { type: 'didFinishSide', genId: 1, side, stop: 'max-tokens', error: undefined });
      }
      const tfjsInHost = Object.keys(require.cache).filter((k) => k.includes(`${path.sep}@tensorflow${path.sep}`));
      assert.deepEqual(tfjsInHost, [], 'tfjs was loaded on the extension host');
    } finally {
      panel.dispose();
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    }
  });
});
