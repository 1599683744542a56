// Problems-panel diagnostics for *.lora.json / *.lora.yaml, as you type (debounced), from the same
// parser the CLI uses (parseExperimentConfig), at the exact ranges it reports, and quick fixes for
// them (configFixes.ts). The editor's own schema validation is off (package.json gives it the editor
// copy of the schema, documentation only), so each problem is listed once.
import * as vscode from 'vscode';
import { parseExperimentConfig } from '../formats/experimentConfig';
import type { ConfigIssue } from '../formats/experimentTypes';
import { Disposable, toDisposable } from '../util/disposable';
import { configFixes } from '../insight/configFixes';

export function isExperimentConfig(doc: vscode.TextDocument): boolean {
  return /\.lora\.(json|ya?ml)$/i.test(doc.uri.path);
}

export function issueToDiagnostic(doc: vscode.TextDocument, issue: ConfigIssue): vscode.Diagnostic {
  const start = doc.positionAt(issue.offset);
  const end = doc.positionAt(issue.offset + Math.max(issue.length, 0));
  const d = new vscode.Diagnostic(
    new vscode.Range(start, end),
    issue.message,
    issue.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning,
  );
  d.source = 'LoRA Lab';
  if (issue.path) d.code = issue.path;
  return d;
}

const CONFIG_SELECTOR: vscode.DocumentSelector = [{ pattern: '**/*.lora.{json,yaml,yml}' }];

/** Quick fixes for the parser's issues under the cursor (unknown key: rename to the closest, or remove). */
export class ConfigCodeActions implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];

  provideCodeActions(doc: vscode.TextDocument, range: vscode.Range, context: vscode.CodeActionContext): vscode.CodeAction[] {
    const ours = context.diagnostics.filter((d) => d.source === 'LoRA Lab');
    if (ours.length === 0) return [];
    const text = doc.getText();
    const { issues } = parseExperimentConfig(text, doc.fileName);
    const out: vscode.CodeAction[] = [];
    for (const diag of ours) {
      const issue = issues.find((i) => i.message === diag.message && doc.positionAt(i.offset).isEqual(diag.range.start));
      if (!issue || !diag.range.intersection(range.union(diag.range))) continue;
      for (const fix of configFixes(text, doc.fileName, issue)) {
        const action = new vscode.CodeAction(fix.title, vscode.CodeActionKind.QuickFix);
        action.diagnostics = [diag];
        action.isPreferred = fix.preferred;
        action.edit = new vscode.WorkspaceEdit();
        for (const e of fix.edits) action.edit.replace(doc.uri, new vscode.Range(doc.positionAt(e.offset), doc.positionAt(e.offset + e.length)), e.newText);
        out.push(action);
      }
    }
    return out;
  }
}

export class ConfigDiagnostics extends Disposable {
  private readonly _collection = this._register(vscode.languages.createDiagnosticCollection('loraLab'));
  private readonly _timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly _debounceMs = 250) {
    super();
    this._register(toDisposable(() => this._timers.forEach((t) => clearTimeout(t))));
    this._register(vscode.workspace.onDidOpenTextDocument((d) => this.update(d)));
    this._register(vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document)));
    this._register(vscode.workspace.onDidCloseTextDocument((d) => this._collection.delete(d.uri)));
    this._register(vscode.languages.registerCodeActionsProvider(CONFIG_SELECTOR, new ConfigCodeActions(), { providedCodeActionKinds: ConfigCodeActions.kinds }));
    for (const d of vscode.workspace.textDocuments) this.update(d);
  }

  private schedule(doc: vscode.TextDocument): void {
    if (!isExperimentConfig(doc)) return;
    const key = doc.uri.toString();
    clearTimeout(this._timers.get(key));
    this._timers.set(
      key,
      setTimeout(() => {
        this._timers.delete(key);
        this.update(doc);
      }, this._debounceMs),
    );
  }

  /** Re-checks one document now. */
  update(doc: vscode.TextDocument): void {
    if (!isExperimentConfig(doc) || doc.isClosed) return;
    let diagnostics: vscode.Diagnostic[];
    try {
      const { issues } = parseExperimentConfig(doc.getText(), doc.fileName);
      diagnostics = issues.map((i) => issueToDiagnostic(doc, i));
    } catch (e) {
      const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 0), `LoRA Lab could not check this file: ${e instanceof Error ? e.message : String(e)}`, vscode.DiagnosticSeverity.Error);
      d.source = 'LoRA Lab';
      diagnostics = [d];
    }
    this._collection.set(doc.uri, diagnostics);
  }
}
