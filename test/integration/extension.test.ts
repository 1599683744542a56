// The extension in a real VS Code: activation, the command table, diagnostics, hovers and the adapter
// tree on the example workspace (test/integration/workspace + adapters added by test/vscode/workspace.mjs).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AdapterNode } from '../../src/views/adapterTree';
import { api, hoverAt, waitFor, workspaceDir, wsUri } from './helpers';

const restricted = process.env.LORA_LAB_RESTRICTED === '1';

(restricted ? describe.skip : describe)('LoRA Lab in VS Code', () => {
  it('activates and registers every command of the table', async () => {
    const a = await api();
    const all = await vscode.commands.getCommands(true);
    for (const id of a.commandIds) assert.ok(all.includes(id), `${id} is not registered`);
    const pkg = vscode.extensions.getExtension('lora-lab.lora-lab')!.packageJSON as { contributes: { commands: { command: string }[] } };
    assert.deepEqual(pkg.contributes.commands.map((c) => c.command).sort(), [...a.commandIds].sort(), 'package.json and the command table list the same commands');
  });

  it('shows config problems at the exact range and clears them as you type', async () => {
    await api();
    const uri = wsUri('broken.lora.json');
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const diags = await waitFor('diagnostics for broken.lora.json', () => {
      const d = vscode.languages.getDiagnostics(uri).filter((x) => x.source === 'LoRA Lab');
      return d.length ? d : undefined;
    });
    const r = diags.find((d) => String(d.code) === 'lora.r');
    assert.ok(r, `no diagnostic on lora.r: ${diags.map((d) => `${String(d.code)} ${d.message}`).join('; ')}`);
    assert.equal(doc.getText(r.range), '0');
    assert.equal(r.severity, vscode.DiagnosticSeverity.Error);
    assert.match(r.message, /r/);
    // Fix it by typing: the problem goes away (debounced).
    const edit = new vscode.WorkspaceEdit();
    edit.replace(uri, r.range, '4');
    assert.ok(await vscode.workspace.applyEdit(edit));
    await waitFor('diagnostics to clear after the edit', () => vscode.languages.getDiagnostics(uri).filter((x) => x.source === 'LoRA Lab' && x.severity === vscode.DiagnosticSeverity.Error).length === 0);
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  it("hovers over r in a config: the seed's 1,049,600 vs 9,216, 0.88 %, about 114× fewer", async () => {
    await api();
    const text = await hoverAt(wsUri('seed.lora.yaml'), '  r: 4', 2);
    assert.match(text, /full 1,049,600 vs LoRA 9,216 — 0\.88 %, about 114× fewer/);
    assert.match(text, /effective scale s = α\/r = 4\/4 = 1/);
    assert.match(text, /Convention: the seed's/);
  });

  it('hovers in Python: LoRALinear, nn.Linear and LoraConfig (with the nearby config.json)', async () => {
    await api();
    const uri = wsUri('python', 'seed_lora.py');
    assert.match(await hoverAt(uri, 'LoRALinear(1024', 3), /LoRALinear\(1024, 1024, r=4\)\*\* — full fine-tune 1,049,600 vs LoRA 9,216 trainable: 0\.88 %, about 114× fewer/);
    assert.match(await hoverAt(uri, 'nn.Linear(1024', 4), /nn\.Linear\(1024, 1024\)\*\* — 1,049,600 parameters/);
    const cfg = await hoverAt(uri, 'LoraConfig(r=8', 12);
    assert.match(cfg, /Llama, 2 layers, hidden 64/);
    assert.match(cfg, /adapted: 4 layers \(q_proj, v_proj\)/);
    assert.match(cfg, /PEFT's/);
  });

  it('hovers in adapter_config.json and axolotl YAML with the base model found', async () => {
    await api();
    const peft = await hoverAt(wsUri('adapters', 'llama-tiny-r8', 'adapter_config.json'), '"r"', 1);
    // 2 layers × (q 64→64, k 64→32, v 64→32, o 64→64) at r = 8: PEFT's trainable_params for this fixture.
    assert.match(peft, /adapted: 8 layers .*LoRA 7,168/s);
    assert.match(peft, /effective scale s = α\/r = 16\/8 = 2/);
    const axo = await hoverAt(wsUri('axolotl.yml'), 'lora_r', 2);
    assert.match(axo, /axolotl lora_r/);
    assert.match(axo, /adapted: 4 layers/);
  });

  it('lists the workspace adapters from headers, with formats, bases, warnings and text-only metadata', async () => {
    const a = await api();
    a.adapters.refresh();
    // Listing is header-only; alpha values and NaN/Inf come from the background values pass.
    await a.adapters.valuesChecked();
    const roots = (await a.adapters.getChildren()) as (AdapterNode & { kind: 'adapter' })[];
    const byLabel = new Map(roots.map((n) => [n.info.label, n.info]));
    for (const want of ['llama-tiny-r8', 'orphan-r8', 'mlx-adapter', 'kohya-style.safetensors', 'nan-lora.safetensors', 'lfs-pointer-lora.safetensors']) {
      assert.ok(byLabel.has(want), `${want} missing from the tree: ${[...byLabel.keys()].join(', ')}`);
    }
    assert.ok(a.adapters.lastScanMs < 1000, `scan took ${a.adapters.lastScanMs} ms`);
    const peft = byLabel.get('llama-tiny-r8')!;
    assert.equal(peft.format, 'peft');
    assert.equal(peft.modules.length, 8);
    assert.deepEqual(peft.ranks, [8]);
    assert.ok(peft.baseFound?.endsWith('llama-tiny'), `base not found: ${peft.baseNote}`);
    assert.match(byLabel.get('orphan-r8')!.baseNote, /not found in this workspace/);
    assert.equal(byLabel.get('mlx-adapter')!.format, 'mlx');
    assert.match(byLabel.get('nan-lora.safetensors')!.warnings.join(' '), /NaN\/Inf/);
    assert.match(byLabel.get('lfs-pointer-lora.safetensors')!.warnings.join(' '), /Git LFS pointer/);
    const kohya = byLabel.get('kohya-style.safetensors')!;
    assert.equal(kohya.format, 'kohya');
    assert.equal(kohya.modules.length, 2);
    // Children: base, metadata (as plain labels), modules with rank/shape/params.
    const kids = await a.adapters.getChildren(roots.find((n) => n.info === kohya));
    const meta = kids.find((k) => k.kind === 'metadata')!;
    const metaItems = (await a.adapters.getChildren(meta)).map((m) => a.adapters.getTreeItem(m));
    const hostile = metaItems.find((i) => i.label === 'ss_output_name')!;
    assert.equal(typeof hostile.description, 'string');
    assert.equal(hostile.description, '<script>alert("pwned")</script>');
    const mod = kids.find((k) => k.kind === 'module')!;
    assert.match(String(a.adapters.getTreeItem(mod).description), /^r 4 · α [24] · s (1|0\.5) · (320→320 \(1×1 conv\)|768→768) · [\d,]+ params · F32$/);
  });

  it('shows problems in *.lora.yaml too, from the same parser', async () => {
    await api();
    const file = wsUri('typo.lora.yaml');
    fs.writeFileSync(file.fsPath, 'name: typo\nkind: low-rank-recovery\nmodel:\n  inFeatures: 64\n  outFeatures: 64\n  trueRank: 4\nlora:\n  rank: 4\n');
    const doc = await vscode.workspace.openTextDocument(file);
    const diags = await waitFor('diagnostics for typo.lora.yaml', () => {
      const d = vscode.languages.getDiagnostics(file).filter((x) => x.source === 'LoRA Lab');
      return d.length ? d : undefined;
    });
    const rank = diags.find((d) => doc.getText(d.range).includes('rank'));
    assert.ok(rank, `no diagnostic on the unknown key "rank": ${diags.map((d) => `${doc.getText(d.range)}: ${d.message}`).join('; ')}`);
    assert.equal(rank.range.start.line, 7);
  });

  it('merges a PEFT adapter into its base in a CLI child process; the host never loads tfjs', async () => {
    const a = await api();
    const node = (await a.adapters.getChildren()).find((n) => n.kind === 'adapter' && n.info.label === 'llama-tiny-r8');
    assert.ok(node);
    const out = path.join(workspaceDir(), 'merged', 'llama-tiny-r8');
    const r = await vscode.commands.executeCommand<string>('loraLab.mergeAdapter', node, { out });
    assert.equal(r, out);
    assert.ok(fs.existsSync(path.join(out, 'config.json')), 'no config.json in the merged folder');
    assert.ok(fs.readdirSync(out).some((f) => f.endsWith('.safetensors')), 'no weights in the merged folder');
    const tfjsInHost = Object.keys(require.cache).filter((k) => k.includes(`${path.sep}@tensorflow${path.sep}`));
    assert.deepEqual(tfjsInHost, [], 'tfjs was loaded on the extension host');
  });

  it('opens the dashboard for a run and the adapter view for an adapter', async () => {
    const a = await api();
    const before = a.dashboardRequests.length;
    const peft = wsUri('adapters', 'llama-tiny-r8').fsPath;
    await vscode.commands.executeCommand('loraLab.inspectAdapter', peft);
    assert.deepEqual(a.dashboardRequests[a.dashboardRequests.length - 1], { adapterPath: peft });
    assert.equal(a.dashboardRequests.length, before + 1);
    await waitFor('a LoRA Lab webview tab', () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && /LoRA Lab/.test(t.label)));
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('Copy Path puts the adapter path on the clipboard', async () => {
    const a = await api();
    const first = (await a.adapters.getChildren())[0];
    const p = await vscode.commands.executeCommand<string>('loraLab.copyAdapterPath', first);
    assert.equal(await vscode.env.clipboard.readText(), p);
  });
});

(restricted ? describe : describe.skip)('LoRA Lab in Restricted Mode', () => {
  it('refuses training, resume and merge in the handler, and still browses and hovers', async () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const a = await api();
    for (const id of ['loraLab.trainExperiment', 'loraLab.resumeRun', 'loraLab.mergeAdapter']) {
      const r = await vscode.commands.executeCommand<{ refused?: string }>(id, wsUri('quick.lora.json').fsPath);
      assert.match(r?.refused ?? '', /Restricted Mode/, `${id} was not refused`);
    }
    await assert.rejects(a.jobs.start({ configPath: wsUri('quick.lora.json').fsPath }), /Restricted Mode/);
    const roots = await a.adapters.getChildren();
    assert.ok(roots.length >= 5);
    assert.match(await hoverAt(wsUri('seed.lora.yaml'), '  r: 4', 2), /1,049,600/);
    // Diagnostics and the runs view work too.
    const broken = wsUri('broken.lora.json');
    await vscode.workspace.openTextDocument(broken);
    await waitFor('diagnostics in Restricted Mode', () => vscode.languages.getDiagnostics(broken).some((d) => d.source === 'LoRA Lab'));
    assert.ok(Array.isArray(await a.runs.getChildren()));
  });
});
