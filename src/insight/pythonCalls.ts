// Finds the call under the cursor in Python source — `nn.Linear(1024, 1024)`, the seed's
// `LoRALinear(1024, 1024, 4)`, PEFT's `LoraConfig(r=8, ...)` — and reads its literal arguments. Pure and
// deliberately small: literals only (ints, floats, bools, strings, lists of strings); anything else is
// reported as unknown rather than guessed.

export type PyValue = number | boolean | string | string[] | null | { unknown: string };

export interface PyCall {
  /** As written, e.g. "nn.Linear" or "LoraConfig". */
  callee: string;
  /** Last dotted part: "Linear". */
  name: string;
  args: PyValue[];
  kwargs: Record<string, PyValue>;
  /** Offsets of the callee start and one past the closing parenthesis. */
  start: number;
  end: number;
}

const CALLEES = /\b((?:[A-Za-z_][A-Za-z0-9_]*\.)*(?:Linear|LoRALinear|LoraConfig|LoRAAttention))\s*\(/g;

/** The innermost supported call whose text contains `offset`, or undefined. */
export function callAt(text: string, offset: number): PyCall | undefined {
  let best: PyCall | undefined;
  CALLEES.lastIndex = 0;
  for (let m = CALLEES.exec(text); m; m = CALLEES.exec(text)) {
    if (m.index > offset) break;
    const open = m.index + m[0].length - 1;
    const close = matchParen(text, open);
    if (close < 0 || close < offset) continue;
    const call = parseCall(m[1], text.slice(open + 1, close), m.index, close + 1);
    if (!best || call.start >= best.start) best = call;
  }
  return best;
}

function matchParen(text: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#') {
      const nl = text.indexOf('\n', i);
      if (nl < 0) return -1;
      i = nl;
    } else if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return ch === ')' ? i : -1;
    }
  }
  return -1;
}

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) {
      cur += ch;
      if (ch === '\\') cur += s[++i] ?? '';
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '#') {
      const nl = s.indexOf('\n', i);
      i = nl < 0 ? s.length : nl;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    if (ch === ')' || ch === ']' || ch === '}') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

export function parseLiteral(src: string): PyValue {
  const s = src.trim();
  if (/^[+-]?\d[\d_]*$/.test(s)) return Number(s.replace(/_/g, ''));
  if (/^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s.replace(/_/g, ''));
  if (s === 'True') return true;
  if (s === 'False') return false;
  if (s === 'None') return null;
  const str = /^(?:[rbuRBU]{0,2})(["'])(.*)\1$/s.exec(s);
  if (str) return str[2];
  if ((s.startsWith('[') && s.endsWith(']')) || (s.startsWith('(') && s.endsWith(')'))) {
    const items = splitTopLevel(s.slice(1, -1)).map(parseLiteral);
    if (items.every((x) => typeof x === 'string')) return items as string[];
  }
  return { unknown: s };
}

function parseCall(callee: string, inner: string, start: number, end: number): PyCall {
  const args: PyValue[] = [];
  const kwargs: Record<string, PyValue> = {};
  for (const part of splitTopLevel(inner)) {
    const kw = /^([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)([\s\S]*)$/.exec(part);
    if (kw) kwargs[kw[1]] = parseLiteral(kw[2]);
    else args.push(parseLiteral(part));
  }
  const name = callee.slice(callee.lastIndexOf('.') + 1);
  return { callee, name, args, kwargs, start, end };
}

/** Positional-or-keyword argument `i` / `key` as a positive integer, else undefined. */
export function intArg(call: PyCall, i: number, key: string): number | undefined {
  const v = call.kwargs[key] ?? call.args[i];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

export function numArg(call: PyCall, i: number, key: string): number | undefined {
  const v = call.kwargs[key] ?? call.args[i];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function boolArg(call: PyCall, i: number, key: string): boolean | undefined {
  const v = call.kwargs[key] ?? call.args[i];
  return typeof v === 'boolean' ? v : undefined;
}

/** An `nn.Linear(in, out)` defined in a Python file, named by what it is assigned to (`self.q_proj = …`). */
export interface FileLinear {
  name: string;
  inFeatures: number;
  outFeatures: number;
  hasBias: boolean;
}

/**
 * Every `Linear(in, out[, bias])` call with literal sizes in the file, named after the attribute or
 * variable it is assigned to (`self.fc1 = nn.Linear(…)` -> "fc1"; a dict key `"q": nn.Linear(…)` -> "q");
 * unnamed ones (inside nn.Sequential) get "linear<i>". Calls with non-literal sizes are skipped.
 */
export function linearsInFile(text: string): FileLinear[] {
  const out: FileLinear[] = [];
  const re = /\b((?:[A-Za-z_][A-Za-z0-9_]*\.)*Linear)\s*\(/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const call = callAt(text, m.index + m[0].length);
    if (!call || call.name !== 'Linear' || call.start !== m.index) continue;
    const d = intArg(call, 0, 'in_features');
    const k = intArg(call, 1, 'out_features');
    if (!d || !k) continue;
    const lineStart = text.lastIndexOf('\n', m.index - 1) + 1;
    const before = text.slice(lineStart, m.index);
    const named = /(?:self\.)?([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*[A-Za-z_.[\]]+\s*)?=\s*$/.exec(before) ?? /["']([A-Za-z_][A-Za-z0-9_.]*)["']\s*:\s*$/.exec(before);
    out.push({ name: named?.[1] ?? `linear${out.length}`, inFeatures: d, outFeatures: k, hasBias: boolArg(call, 2, 'bias') ?? true });
  }
  return out;
}
