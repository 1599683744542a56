// Text positions: experiment files parsed with their syntax trees (jsonc-parser for JSON with
// comments, yaml for YAML), so every issue can name a JSON path and point at a text range; and the
// bytes-to-text step (UTF-8, byte order mark).
import {
  findNodeAtLocation,
  getLocation,
  getNodePath,
  getNodeValue,
  parseTree,
  printParseErrorCode,
  type Node as JsonNode,
  type ParseError,
} from 'jsonc-parser';
import { isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { JSON_ERROR_WORDS, lineColumnAt } from '../jsonText';
import type { ConfigIssue } from '../experimentTypes';

/** A JSON path as segments: property names and array indices. */
export type PathSegments = readonly (string | number)[];

export interface TextRange {
  offset: number;
  length: number;
}

/** True for file names this module parses as YAML (everything else is JSON with comments). */
export function isYamlFileName(fileName: string): boolean {
  return /\.ya?ml$/i.test(fileName);
}

// Parsing with positions: one small interface over jsonc-parser's and yaml's syntax trees.

interface SyntaxProblem {
  severity: 'error' | 'warning';
  path?: (string | number)[];
  message: string;
  offset: number;
  length: number;
}

interface ParsedText {
  value: unknown;
  problems: SyntaxProblem[];
  /** Range of the value at `path`. */
  valueRange(path: PathSegments): TextRange | undefined;
  /** Range of the key naming `path`'s last segment (the value range for array items). */
  keyRange(path: PathSegments): TextRange | undefined;
  /** Path of the key or value under `offset` (innermost). */
  pathAt(offset: number): (string | number)[];
}

// JSON with comments: one top-level value in a file, and a comment is allowed (so only a malformed one is reported).
const JSON_ERROR_TEXT: Record<string, string> = {
  ...JSON_ERROR_WORDS,
  EndOfFileExpected: 'expected the end of the file (only one top-level value is allowed)',
  InvalidCommentToken: 'invalid comment',
  InvalidCharacter: 'invalid character in a string',
};

function parseJsonText(text: string): ParsedText {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: true });
  const problems: SyntaxProblem[] = errors.map((e) => {
    const code = printParseErrorCode(e.error);
    return { severity: 'error', message: `JSON syntax: ${JSON_ERROR_TEXT[code] ?? code}`, offset: e.offset, length: Math.max(1, e.length) };
  });
  if (root) findDuplicateKeys(root, problems);
  const nodeAt = (path: PathSegments): JsonNode | undefined => (root ? findNodeAtLocation(root, [...path]) : undefined);
  return {
    value: root && problems.length === 0 ? getNodeValue(root) : undefined,
    problems,
    valueRange(path) {
      const n = path.length === 0 ? root : nodeAt(path);
      return n ? { offset: n.offset, length: n.length } : undefined;
    },
    keyRange(path) {
      const n = path.length === 0 ? root : nodeAt(path);
      const key = n?.parent?.type === 'property' ? n.parent.children?.[0] : undefined;
      if (key) return { offset: key.offset, length: key.length };
      return n ? { offset: n.offset, length: n.length } : undefined;
    },
    pathAt(offset) {
      const loc = getLocation(text, offset);
      const path = [...loc.path];
      while (path.length > 0 && path[path.length - 1] === '') path.pop();
      return path;
    },
  };
}

function findDuplicateKeys(node: JsonNode, problems: SyntaxProblem[]): void {
  if (node.type === 'object') {
    const seen = new Set<string>();
    for (const prop of node.children ?? []) {
      const key = prop.children?.[0];
      if (!key) continue;
      const name = String(key.value);
      if (seen.has(name)) {
        const path = [...getNodePath(prop), name];
        problems.push({ severity: 'error', path, message: `duplicate key \`${name}\` (only one may appear)`, offset: key.offset, length: key.length });
      }
      seen.add(name);
    }
  }
  for (const child of node.children ?? []) findDuplicateKeys(child, problems);
}

function parseYamlText(text: string): ParsedText {
  // logLevel 'error': the library's warnings (a list used as a key) would go to process warnings on
  // stderr; such a key is reported as an unknown key here anyway.
  const doc: Document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, strict: true, logLevel: 'error' });
  const problems: SyntaxProblem[] = [];
  for (const [severity, list] of [['error', doc.errors], ['warning', doc.warnings]] as const) {
    for (const e of list) {
      const [start, end] = e.pos;
      const message = e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
      problems.push({ severity, message: `YAML: ${message}`, offset: start, length: Math.max(1, end - start) });
    }
  }
  const range = (node: unknown): TextRange | undefined => {
    const r = (node as { range?: [number, number, number] } | undefined)?.range;
    return r ? { offset: r[0], length: Math.max(0, r[1] - r[0]) } : undefined;
  };
  let value: unknown;
  if (!problems.some((p) => p.severity === 'error')) {
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push({ severity: 'error', message: `YAML: ${(e as Error).message}`, offset: 0, length: 1 });
    }
  }
  const pairOf = (path: PathSegments) => {
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    return parent.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(last));
  };
  return {
    value: value === null ? undefined : value, // an empty document is "no content"
    problems,
    valueRange(path) {
      if (path.length === 0) return range(doc.contents);
      const pair = pairOf(path);
      if (pair) return range(pair.value) ?? range(pair.key);
      return range(doc.getIn(path, true));
    },
    keyRange(path) {
      if (path.length === 0) return range(doc.contents);
      const pair = pairOf(path);
      return pair ? range(pair.key) : range(doc.getIn(path, true));
    },
    pathAt(offset) {
      const found: (string | number)[] = [];
      const inside = (node: unknown) => {
        const r = (node as { range?: [number, number, number] } | null)?.range;
        return !!r && offset >= r[0] && offset <= r[1];
      };
      let node: unknown = doc.contents;
      for (;;) {
        if (isMap(node)) {
          const pair = node.items.find((p) => inside(p.key) || inside(p.value));
          if (!pair) break;
          found.push(isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
          if (inside(pair.key)) break;
          node = pair.value;
        } else if (isSeq(node)) {
          const i = node.items.findIndex((item) => inside(item));
          if (i < 0) break;
          found.push(i);
          node = node.items[i];
        } else break;
      }
      return found;
    },
  };
}

export function parseText(text: string, fileName: string): ParsedText {
  return isYamlFileName(fileName) ? parseYamlText(text) : parseJsonText(text);
}

/** Text range of the value at `path` (or of its key, with part 'key'); undefined when absent. */
export function findNodeAtPath(text: string, fileName: string, path: PathSegments | string, part: 'value' | 'key' = 'value'): TextRange | undefined {
  const doc = parseText(text, fileName);
  const segs = typeof path === 'string' ? parsePathString(path) : path;
  return part === 'key' ? doc.keyRange(segs) : doc.valueRange(segs);
}

/** JSON path of the key or value at `offset`, e.g. ["lora", "r"]; [] at the top level. */
export function pathAtOffset(text: string, fileName: string, offset: number): (string | number)[] {
  return parseText(text, fileName).pathAt(offset);
}

/** ["lora", "targetModules", 1] -> "lora.targetModules[1]". */
export function formatPath(path: PathSegments): string {
  let out = '';
  for (const s of path) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/** "lora.targetModules[1]" -> ["lora", "targetModules", 1]. */
export function parsePathString(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/**
 * The text of an experiment file's bytes: UTF-8, a leading byte order mark dropped. Invalid UTF-8 is
 * an issue at the first bad byte (line, column) rather than U+FFFD characters silently in the config.
 */
export function decodeExperimentBytes(bytes: Uint8Array): { text: string; issue?: undefined } | { text?: undefined; issue: ConfigIssue } {
  const bad = firstInvalidUtf8(bytes);
  if (bad === undefined) return { text: new TextDecoder('utf-8', { ignoreBOM: false }).decode(bytes) };
  const before = new TextDecoder('utf-8', { ignoreBOM: false }).decode(bytes.subarray(0, bad));
  const { line, column } = lineColumnAt(before, before.length);
  const hex = Array.from(bytes.subarray(bad, Math.min(bytes.length, bad + 4)), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return {
    issue: {
      severity: 'error',
      path: '',
      message: `not valid UTF-8 at byte ${bad} (bytes ${hex}): save the file as UTF-8`,
      offset: before.length,
      length: 1,
      line,
      column,
    },
  };
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence, or undefined. */
export function firstInvalidUtf8(b: Uint8Array): number | undefined {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0; // no overlong forms
      if (c === 0xed) hi = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    if (b[i + 1] === undefined || b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k <= n; k++) if (b[i + k] === undefined || b[i + k] < 0x80 || b[i + k] > 0xbf) return i;
    i += n + 1;
  }
  return undefined;
}
