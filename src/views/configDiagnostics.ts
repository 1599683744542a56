// Problems-panel diagnostics for *.lora.json / *.lora.yaml, as you type (debounced), from the same
// parser the CLI uses (parseExperimentConfig), at the exact ranges it reports.
import * as vscode from 'vscode';
import { parseExperimentConfig } from '../formats/experimentConfig';
import type { ConfigIssue } from '../formats/experimentTypes';
import { Disposable, toDisposable } from '../util/disposable';

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

export class ConfigDiagnostics extends Disposable {
  private readonly _collection = this._register(vscode.languages.createDiagnosticCollection('loraLab'));
  private readonly _timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly _debounceMs = 250) {
    super();
    this._register(toDisposable(() => this._timers.forEach((t) => clearTimeout(t))));
    this._register(vscode.workspace.onDidOpenTextDocument((d) => this.update(d)));
    this._register(vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document)));
    this._register(vscode.workspace.onDidCloseTextDocument((d) => this._collection.delete(d.uri)));
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
