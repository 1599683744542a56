// The extension in a real VS Code: activation, the command table, diagnostics, hovers and the adapter
// tree on the example workspace (test/integration/workspace + adapters added by test/vscode/workspace.mjs).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AdapterNode } from '../../src/views/adapterTree';
import { api, hoverAt, hoverText, waitFor, workspaceDir, wsUri, adapterRows } from './helpers';

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

  it("hovers over r in a config: the LoRA article's 1,049,600 vs 9,216, 0.88 %, about 114× fewer", async () => {
    await api();
    const text = await hoverAt(wsUri('seed.lora.yaml'), '  r: 4', 2);
    assert.match(text, /full 1,049,600 vs LoRA 9,216 — 0\.88 %, about 114× fewer/);
    assert.match(text, /effective scale s = α\/r = 4\/4 = 1/);
    assert.match(text, /Convention: the reference LoRA code's/);
  });

  it('hovers over a target module in a config: that layer first, rsLoRA scale, W_O trained in full', async () => {
    await api();
    const uri = wsUri('attention.lora.yaml');
    const doc = await vscode.workspace.openTextDocument(uri);
    const line = doc.getText().split('\n').findIndex((l) => l.includes('targetModules'));
    const col = doc.lineAt(line).text.indexOf('k,');
    const text = hoverText(await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, new vscode.Position(line, col)));
    assert.match(text, /\(target modules\) — attention-adaptation \(E = 64, 1 head\)/);
    assert.match(text, /this layer: `k` \(64→64, bias\): full 4,160 vs LoRA 512 — 12\.31 %/);
    assert.match(text, /effective scale s = α\/√r = 8\/√4 = 4 \(rsLoRA\)/);
    assert.match(text, /adapted: 3 layers \(q, k, v\): full fine-tune of them 12,480 vs LoRA 1,536/);
    assert.match(text, /whole model: 16,640 parameters; trainable 5,696 \(incl\. 4,160 base parameters trained in full\)/);
  });

  it('hovers over batchSize in a causal-lm config: the memory estimate, its limit and what it assumes', async () => {
    await api();
    // A config written for this test only: the example workspace's other configs are not causal-lm.
    const file = path.join(workspaceDir(), 'memory-hover.lora.json');
    const config = {
      name: 'memory-hover',
      kind: 'causal-lm',
      model: { modelPath: 'models/llama-tiny', dataset: { path: 'notes.txt', seqLen: 64 } },
      lora: { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] },
      optimizer: { name: 'adamw', lr: 0.001 },
      training: { steps: 2, batchSize: 4 },
    };
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    try {
      const text = await hoverAt(vscode.Uri.file(file), '"batchSize"', 2);
      assert.match(text, /- memory estimate \(batch 4 × seqLen 64, AdamW, gradient checkpointing off\): \*\*[\d.]+ (KiB|MiB|GiB)\*\* in all, of this machine's [\d.]+ GiB/);
      // No tfjs-node here, so the worker would run wasm; with or without the native addon, the hover says which.
      assert.match(text, /\n {2}- tensor heap [\d.]+ MiB of the wasm heap's 4 GiB \(90 % usable: 3\.6 GiB\): frozen weights \(in the heap\) [\d.]+ (KiB|MiB); LoRA \+ optimizer/);
      assert.match(text, /\n {2}- assumes the default path: wasm (with|without) the native kernels, frozen weights (outside|inside) the 4 GiB wasm heap/);
      assert.match(text, /\n {2}- fits\n/);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('hovers in Python: LoRALinear, nn.Linear and LoraConfig (with the nearby config.json)', async () => {
    await api();
    const uri = wsUri('python', 'seed_lora.py');
    const seed = await hoverAt(uri, 'LoRALinear(1024', 3);
    assert.match(seed, /LoRALinear\(1024, 1024, r=4\)\*\* — full fine-tune 1,049,600 vs LoRA 9,216 trainable: 0\.88 %, about 114× fewer/);
    assert.match(seed, /Convention: the reference LoRA code's — the layer's bias trains with A and B/);
    const linear = await hoverAt(uri, 'nn.Linear(1024', 4);
    assert.match(linear, /nn\.Linear\(1024, 1024\)\*\* — 1,049,600 parameters/);
    assert.match(linear, /Convention: PEFT's — bias frozen/);
    const cfg = await hoverAt(uri, 'LoraConfig(r=8', 12);
    assert.match(cfg, /Llama, 2 layers, hidden 64/);
    assert.match(cfg, /adapted: 4 layers \(q_proj, v_proj\)/);
    assert.match(cfg, /Convention: PEFT's — bias frozen .*trainable % is of all parameters \(base \+ LoRA\)/);
    // A model defined in the file: LoraConfig counts its nn.Linear(1024, 1024) layers.
    const custom = await hoverAt(wsUri('python', 'custom_model.py'), 'LoraConfig(r=8', 12);
    assert.match(custom, /the nn\.Linear layers of this file \(3\)/);
    assert.match(custom, /adapted: 2 layers \(q_proj, v_proj\): full fine-tune of them 2,099,200 vs LoRA 32,768/);
  });

  it('hovers in adapter_config.json say what each key is', async () => {
    await api();
    const file = wsUri('adapters', 'llama-tiny-r8', 'adapter_config.json');
    const dropout = await hoverAt(file, '"lora_dropout"', 3);
    assert.match(dropout, /\*\*`lora_dropout`\*\* — Dropout on the input of the LoRA branch/);
    const alpha = await hoverAt(file, '"lora_alpha"', 3);
    assert.match(alpha, /\*\*`lora_alpha`\*\* — α: ΔW = \(α\/r\)·B·A/);
    assert.match(alpha, /adapted: 8 layers/);
    assert.notEqual(dropout, alpha);
  });

  it('hovers in adapter_config.json and axolotl YAML with the base model found', async () => {
    await api();
    const peft = await hoverAt(wsUri('adapters', 'llama-tiny-r8', 'adapter_config.json'), '"r"', 1);
    // 2 layers × (q 64→64, k 64→32, v 64→32, o 64→64) at r = 8: PEFT's trainable_params for this fixture.
    assert.match(peft, /adapted: 8 layers .*LoRA 7,168/s);
    assert.match(peft, /effective scale s = α\/r = 16\/8 = 2/);
    assert.match(peft, /Convention: PEFT's — bias frozen/);
    const axo = await hoverAt(wsUri('axolotl.yml'), 'lora_r', 2);
    assert.match(axo, /axolotl lora_r/);
    assert.match(axo, /adapted: 4 layers/);
    assert.match(axo, /Convention: PEFT's/);
  });

  it('hovers in mlx-lm YAML: the absolute scale, the last num_layers layers', async () => {
    await api();
    const mlx = await hoverAt(wsUri('mlx_lora.yaml'), 'rank:', 1);
    assert.match(mlx, /mlx-lm, last 2 layers/);
    // q_proj 64→64 and v_proj 64→32 in both layers of llama-tiny at r = 8.
    assert.match(mlx, /adapted: 4 layers \(q_proj, v_proj\): .* vs LoRA 3,584/);
    assert.match(mlx, /effective scale s = α\/r = 160\/8 = 20/);
    assert.match(mlx, /`scale` 20 is the absolute scale s on B·A, not α/);
    assert.match(mlx, /Convention: PEFT's/);
  });

  it('lists the workspace adapters from headers, with formats, bases, warnings and text-only metadata', async () => {
    const a = await api();
    a.adapters.refresh();
    // Listing is header-only; alpha values and NaN/Inf come from the background values pass.
    await a.adapters.valuesChecked();
    const roots = (await adapterRows(a)) as (AdapterNode & { kind: 'adapter' })[];
    const byLabel = new Map(roots.map((n) => [n.info.label, n.info]));
    for (const want of ['llama-tiny-r8', 'orphan-r8', 'mlx-adapter', 'kohya-style.safetensors', 'nan-lora.safetensors', 'lfs-pointer-lora.safetensors']) {
      assert.ok(byLabel.has(want), `${want} missing from the tree: ${[...byLabel.keys()].join(', ')}`);
    }
    const peft = byLabel.get('llama-tiny-r8')!;
    assert.equal(peft.format, 'peft');
    assert.equal(peft.modules.length, 8);
    assert.deepEqual(peft.ranks, [8]);
    assert.ok(peft.baseFound?.endsWith('llama-tiny'), `base not found: ${peft.baseNote}`);
    assert.match(byLabel.get('orphan-r8')!.baseNote, /not found in this workspace/);
    assert.equal(byLabel.get('mlx-adapter')!.format, 'mlx');
    assert.deepEqual(byLabel.get('mlx-adapter')!.warnings, [], 'an mlx-lm adapter is not warned about for lacking PEFT fields');
    assert.match(byLabel.get('nan-lora.safetensors')!.warnings.join(' '), /NaN\/Inf/);
    assert.match(byLabel.get('lfs-pointer-lora.safetensors')!.warnings.join(' '), /Git LFS pointer/);
    assert.match(byLabel.get('mismatch-r16')!.warnings.join(' '), /adapter_config\.json: "r" gives r = 16 for \S+, but its lora_A has rank 8/);
    assert.deepEqual(peft.warnings, [], 'the matching PEFT adapter has no warnings');
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

  it('the file watcher adds a LoRA file copied into the workspace and drops it when deleted', async () => {
    const a = await api();
    await a.adapters.adapters();
    const copy = wsUri('loras', 'watched-lora.safetensors').fsPath;
    fs.copyFileSync(wsUri('loras', 'kohya-style.safetensors').fsPath, copy);
    const has = async () => (await a.adapters.adapters()).some((x) => x.label === 'watched-lora.safetensors');
    // No refresh call: only the watcher can make it appear.
    await waitFor('the copied LoRA file in the tree', has, 15_000, 100);
    fs.rmSync(copy);
    await waitFor('the deleted LoRA file gone from the tree', async () => !(await has()), 15_000, 100);
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

  it('lists each config error once (no schema duplicate) and fixes an unknown key with a quick fix', async () => {
    await api();
    const uri = wsUri('typo-fix.lora.json');
    fs.writeFileSync(uri.fsPath, '{\n  "kind": "low-rank-recovery",\n  "lora": { "r": 2, "alpah": 4 },\n  "training": { "steps": 0 }\n}\n');
    // A plain .json file with a $schema: the JSON language service validates it, so when its error shows,
    // the service has also had its turn at typo-fix.lora.json.
    const control = wsUri('control.json');
    fs.writeFileSync(wsUri('control.schema.json').fsPath, JSON.stringify({ type: 'object', properties: { n: { type: 'integer' } } }));
    fs.writeFileSync(control.fsPath, '{ "$schema": "./control.schema.json", "n": "text" }\n');
    try {
      const doc = await vscode.workspace.openTextDocument(uri);
      await vscode.window.showTextDocument(doc);
      const ours = await waitFor('two LoRA Lab diagnostics', () => {
        const d = vscode.languages.getDiagnostics(uri).filter((x) => x.source === 'LoRA Lab');
        return d.length >= 2 ? d : undefined;
      });
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(control));
      await waitFor('the JSON schema check of control.json', () => vscode.languages.getDiagnostics(control).length > 0, 30_000);
      const all = vscode.languages.getDiagnostics(uri);
      assert.deepEqual(all.map((d) => d.source), ours.map(() => 'LoRA Lab'), `each problem once: ${all.map((d) => `${d.source}: ${d.message}`).join(' | ')}`);
      // Quick fixes on the unknown key: rename to the closest known key (preferred), or remove it.
      const unknown = ours.find((d) => /unknown key `alpah`/.test(d.message))!;
      assert.ok(unknown);
      const actions = (await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', uri, unknown.range)).filter((x) => x.diagnostics?.includes(unknown) || /alpah/.test(x.title));
      assert.deepEqual(actions.map((x) => x.title).sort(), ['Remove `alpah`', 'Rename `alpah` to `alpha`']);
      const rename = actions.find((x) => x.title.startsWith('Rename'))!;
      assert.ok(await vscode.workspace.applyEdit(rename.edit!));
      assert.match(doc.getText(), /"alpha": 4/);
      await waitFor('the unknown-key diagnostic gone', () => !vscode.languages.getDiagnostics(uri).some((d) => /unknown key/.test(d.message)));
      await vscode.commands.executeCommand('workbench.action.files.revert');
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      for (const f of [uri, control, wsUri('control.schema.json')]) fs.rmSync(f.fsPath, { force: true });
    }
  });

  it('New Experiment writes <name>.lora.json into the folder asked for; the walkthrough has its four steps', async () => {
    await api();
    const folder = wsUri('new-exp');
    fs.mkdirSync(folder.fsPath, { recursive: true });
    try {
      const made = await vscode.commands.executeCommand<vscode.Uri>('loraLab.newExperiment', undefined, { kind: 'low-rank-recovery', folder: folder.fsPath, name: 'My rank test', r: 2 });
      assert.equal(made?.fsPath, path.join(folder.fsPath, 'My-rank-test.lora.json'));
      const text = fs.readFileSync(made.fsPath, 'utf8');
      assert.match(text, /"name": "My-rank-test"/);
      assert.match(text, /"r": 2/);
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    } finally {
      fs.rmSync(folder.fsPath, { recursive: true, force: true });
    }
    const ext = vscode.extensions.getExtension('lora-lab.lora-lab')!;
    const pkg = ext.packageJSON as { contributes: { walkthroughs: { steps: { id: string; media: { markdown: string } }[] }[] } };
    const steps = pkg.contributes.walkthroughs[0].steps;
    assert.deepEqual(steps.map((x) => x.id), ['train', 'dashboard', 'inspect', 'sweep']);
    for (const st of steps) assert.ok(fs.existsSync(path.join(ext.extensionPath, st.media.markdown)), `${st.media.markdown} is missing`);
  });

  it('the Adapters view groups runs, third-party adapters by format, and unreadable files with the reason', async () => {
    const a = await api();
    const groups = (await a.adapters.getChildren()).filter((n): n is AdapterNode & { kind: 'group' } => n.kind === 'group');
    const labels = groups.map((g) => g.group.label);
    assert.ok(labels.includes('PEFT') && labels.includes('Unreadable or not LoRA'), labels.join(', '));
    const problems = groups.find((g) => g.group.id === 'problems')!;
    const lfs = problems.group.adapters.find((x) => x.label === 'lfs-pointer-lora.safetensors');
    assert.ok(lfs, `the LFS pointer is listed with the problems: ${problems.group.adapters.map((x) => x.label).join(', ')}`);
    const item = a.adapters.getTreeItem({ kind: 'adapter', info: lfs });
    assert.match(String(item.tooltip), /Git LFS pointer/);
  });

  it('merges a PEFT adapter into its base in a CLI child process; the host never loads tfjs', async () => {
    const a = await api();
    const node = (await adapterRows(a)).find((n) => n.kind === 'adapter' && n.info.label === 'llama-tiny-r8');
    assert.ok(node);
    const out = path.join(workspaceDir(), 'merged', 'llama-tiny-r8');
    const r = await vscode.commands.executeCommand<string>('loraLab.mergeAdapter', node, { out });
    assert.equal(r, out);
    assert.ok(fs.existsSync(path.join(out, 'config.json')), 'no config.json in the merged folder');
    assert.ok(fs.readdirSync(out).some((f) => f.endsWith('.safetensors')), 'no weights in the merged folder');
    const tfjsInHost = Object.keys(require.cache).filter((k) => k.includes(`${path.sep}@tensorflow${path.sep}`));
    assert.deepEqual(tfjsInHost, [], 'tfjs was loaded on the extension host');
  });

  it('converts a PEFT adapter to a llama.cpp GGUF in a CLI child process, with the per-layer ΔW error', async () => {
    const a = await api();
    const node = (await adapterRows(a)).find((n) => n.kind === 'adapter' && n.info.label === 'llama-tiny-r8');
    assert.ok(node);
    const out = path.join(workspaceDir(), 'converted', 'llama-tiny-r8.gguf');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const r = await vscode.commands.executeCommand<{ out: string; modules: { relError: number }[] }>('loraLab.convertAdapter', node, { to: 'gguf', out });
    assert.equal(r.out, out);
    assert.equal(r.modules.length, 8);
    assert.ok(r.modules.every((m) => m.relError < 1e-6), 'an F32 conversion is exact');
    assert.equal(fs.readFileSync(out).subarray(0, 4).toString('latin1'), 'GGUF');
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

  it('Compare with… opens both adapters in one panel', async () => {
    const a = await api();
    const peft = wsUri('adapters', 'llama-tiny-r8').fsPath;
    const orphan = wsUri('adapters', 'orphan-r8').fsPath;
    const tabs = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview && /LoRA Lab/.test(t.label));
    const before = tabs().length;
    await vscode.commands.executeCommand('loraLab.compareAdapterWith', peft, orphan);
    assert.deepEqual(a.dashboardRequests[a.dashboardRequests.length - 1], { adapterPaths: [peft, orphan] });
    await waitFor('one new LoRA Lab webview tab', () => tabs().length === before + 1);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('Copy Path puts the adapter folder path on the clipboard', async () => {
    const a = await api();
    const node = (await adapterRows(a)).find((n) => n.kind === 'adapter' && n.info.label === 'llama-tiny-r8');
    assert.ok(node);
    // Expected from the workspace layout, not from the command; a stale clipboard must not pass either.
    const expected = wsUri('adapters', 'llama-tiny-r8').fsPath;
    await vscode.env.clipboard.writeText('not the adapter path');
    await vscode.commands.executeCommand('loraLab.copyAdapterPath', node);
    assert.equal(await vscode.env.clipboard.readText(), expected);
  });
});

(restricted ? describe : describe.skip)('LoRA Lab in Restricted Mode', () => {
  it('refuses training, resume, merge and convert in the handler, and still browses and hovers', async () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const a = await api();
    for (const id of ['loraLab.trainExperiment', 'loraLab.resumeRun', 'loraLab.mergeAdapter', 'loraLab.convertAdapter']) {
      const r = await vscode.commands.executeCommand<{ refused?: string }>(id, wsUri('quick.lora.json').fsPath);
      assert.match(r?.refused ?? '', /Restricted Mode/, `${id} was not refused`);
    }
    await assert.rejects(a.jobs.start({ configPath: wsUri('quick.lora.json').fsPath }), /Restricted Mode/);
    const roots = await adapterRows(a);
    assert.ok(roots.length >= 5);
    assert.match(await hoverAt(wsUri('seed.lora.yaml'), '  r: 4', 2), /1,049,600/);
    // Diagnostics and the runs view work too.
    const broken = wsUri('broken.lora.json');
    await vscode.workspace.openTextDocument(broken);
    await waitFor('diagnostics in Restricted Mode', () => vscode.languages.getDiagnostics(broken).some((d) => d.source === 'LoRA Lab'));
    assert.ok(Array.isArray(await a.runs.getChildren()));
  });
});
