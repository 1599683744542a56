// Quick fixes for experiment configs (pure: text in, edits out; configDiagnostics.ts turns them into
// code actions). An unknown key gets "rename to the closest known key" (when one is close) and "remove
// it" (the key, its value and the separator, so the file stays valid JSON / YAML).
import { modify } from 'jsonc-parser';
import { isMap, isPair, isScalar, parseDocument } from 'yaml';
import { EXPERIMENT_KINDS, allowedKeysAt, closestName, isYamlFileName, parsePathString } from '../formats/experimentConfig';
import type { ConfigIssue, ExperimentKind } from '../formats/experimentTypes';

export interface TextEdit {
  offset: number;
  length: number;
  newText: string;
}

export interface ConfigFix {
  title: string;
  edits: TextEdit[];
  /** The fix the editor offers first (Ctrl+. then Enter). */
  preferred?: boolean;
}

/** The fixes for one issue reported by parseExperimentConfig (none when it is not an unknown key). */
export function configFixes(text: string, fileName: string, issue: Pick<ConfigIssue, 'path' | 'message' | 'offset' | 'length'>): ConfigFix[] {
  if (!/^unknown key `/.test(issue.message)) return [];
  const path = parsePathString(issue.path);
  const key = path[path.length - 1];
  if (typeof key !== 'string') return [];
  const parent = path.slice(0, -1);
  const fixes: ConfigFix[] = [];
  const suggestion = closestName(key, allowedKeysAt(parent, kindOf(text, fileName)));
  const written = text.slice(issue.offset, issue.offset + issue.length);
  if (suggestion && (written === key || written === JSON.stringify(key) || written === `'${key}'`)) {
    const quote = written.startsWith('"') ? '"' : written.startsWith("'") ? "'" : '';
    fixes.push({ title: `Rename \`${key}\` to \`${suggestion}\``, edits: [{ offset: issue.offset, length: issue.length, newText: `${quote}${suggestion}${quote}` }], preferred: true });
  }
  const removal: TextEdit[] | undefined = isYamlFileName(fileName)
    ? removeYamlKey(text, path)
    : modify(text, path, undefined, { formattingOptions: { insertSpaces: true, tabSize: 2 } }).map((e) => ({ offset: e.offset, length: e.length, newText: e.content }));
  if (removal && removal.length) fixes.push({ title: `Remove \`${key}\``, edits: removal });
  return fixes;
}

function kindOf(text: string, fileName: string): ExperimentKind | undefined {
  const m = isYamlFileName(fileName) ? /^kind\s*:\s*["']?([a-z-]+)/m.exec(text) : /"kind"\s*:\s*"([a-z-]+)"/.exec(text);
  return m && EXPERIMENT_KINDS.includes(m[1] as ExperimentKind) ? (m[1] as ExperimentKind) : undefined;
}

/** Deletes the lines of a block-style `key: value` pair (flow style `{a: 1, b: 2}` is left to the user). */
function removeYamlKey(text: string, path: (string | number)[]): TextEdit[] | undefined {
  const doc = parseDocument(text);
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  if (!isMap(parent) || parent.flow) return undefined;
  const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === path[path.length - 1]);
  const keyRange = pair && isScalar(pair.key) ? pair.key.range : undefined;
  if (!pair || !keyRange) return undefined;
  const valueEnd = (pair.value as { range?: [number, number, number] } | null)?.range?.[1] ?? keyRange[1];
  const start = text.lastIndexOf('\n', keyRange[0] - 1) + 1;
  if (text.slice(start, keyRange[0]).trim() !== '') return undefined; // not at the start of its line
  let end = Math.max(valueEnd, keyRange[1]);
  // Through the end of the last line the value occupies (its newline included).
  while (end > start && (text[end - 1] === '\n' || text[end - 1] === ' ')) end--;
  const nl = text.indexOf('\n', end);
  end = nl < 0 ? text.length : nl + 1;
  return [{ offset: start, length: end - start, newText: '' }];
}
