// Describes why a text is not JSON by position and kind of problem, never by quoting it: V8's
// JSON.parse messages quote the start of the text ("root:x:0:0"... is not valid JSON), and the text
// may be any file a link pointed at.
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';

/** jsonc-parser's error codes in words (strict JSON; the experiment-file parser words two differently). */
export const JSON_ERROR_WORDS: Readonly<Record<string, string>> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a property name in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: 'expected a colon after the property name',
  CommaExpected: 'expected a comma',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: 'expected the end of the text (only one top-level value is allowed)',
  InvalidCommentToken: 'a comment (not allowed in JSON)',
  UnexpectedEndOfComment: 'unterminated comment',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'unterminated number',
  InvalidUnicode: 'invalid unicode escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'a control character inside a string',
};

const MAX_DESCRIBED_DEPTH = 1000;

/** 1-based line and column of a UTF-16 offset. */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: end - start + 1 };
}

/**
 * "not valid JSON (expected a comma at line 3, column 7)" for a text JSON.parse rejected (strict JSON:
 * no comments, no trailing commas), without any of the text itself.
 */
export function describeJsonSyntaxError(text: string): string {
  if (text.trim() === '') return 'not valid JSON (the file is empty)';
  // The parser below recurses once per level; JSON.parse does not, so a deep text can get here.
  const deep = nestingTooDeep(text, false, MAX_DESCRIBED_DEPTH);
  if (deep !== undefined) {
    const { line, column } = lineColumnAt(text, deep);
    return `not valid JSON (nested more than ${MAX_DESCRIBED_DEPTH} levels deep at line ${line}, column ${column})`;
  }
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (!first) {
    // jsonc-parser accepted what JSON.parse did not; still say nothing of the text.
    return 'not valid JSON';
  }
  const { line, column } = lineColumnAt(text, first.offset);
  const code = printParseErrorCode(first.error);
  return `not valid JSON (${JSON_ERROR_WORDS[code] ?? code} at line ${line}, column ${column})`;
}

/**
 * The offset where the nesting of objects and lists first goes deeper than `max`, or undefined. JSON
 * (with comments): brackets outside strings and comments. YAML: flow brackets, plus block levels
 * from indentation and compact "- " / "? " indicators (block scalars' text lines excepted).
 */
export function nestingTooDeep(text: string, yaml: boolean, max: number): number | undefined {
  if (!yaml) {
    let depth = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '"') {
        for (i++; i < text.length && text[i] !== '"' && text[i] !== '\n'; i++) if (text[i] === '\\') i++;
      } else if (c === '/' && text[i + 1] === '/') {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (c === '/' && text[i + 1] === '*') {
        const end = text.indexOf('*/', i + 2);
        i = end < 0 ? text.length : end + 1;
      } else if (c === '[' || c === '{') {
        if (++depth > max) return i;
      } else if (c === ']' || c === '}') {
        depth = Math.max(0, depth - 1);
      }
    }
    return undefined;
  }
  const indents: number[] = []; // indentation of each open block level
  let flow = 0;
  let scalarIndent = -1; // inside a block scalar (| or >): lines indented more than this are text
  let offset = 0;
  for (const line of text.split('\n')) {
    const start = offset;
    offset += line.length + 1;
    const indent = line.length - line.trimStart().length;
    const body = line.trim();
    if (scalarIndent >= 0) {
      if (body === '' || indent > scalarIndent) continue;
      scalarIndent = -1;
    }
    if (body === '' || body.startsWith('#')) continue;
    let i = indent;
    if (flow === 0) {
      while (indents.length && indents[indents.length - 1] >= indent) indents.pop();
      indents.push(indent);
      // "- - - x": each indicator opens a level on the same line.
      while ((line[i] === '-' || line[i] === '?') && (line[i + 1] === ' ' || line[i + 1] === undefined)) {
        indents.push(i + 1);
        i += 2;
        while (line[i] === ' ') i++;
      }
      if (indents.length + flow > max) return start + Math.min(i, line.length);
    }
    for (; i < line.length; i++) {
      const c = line[i];
      if (c === '"' || c === "'") {
        for (i++; i < line.length && line[i] !== c; i++) if (c === '"' && line[i] === '\\') i++;
      } else if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) {
        break;
      } else if (c === '[' || c === '{') {
        if (indents.length + ++flow > max) return start + i;
      } else if (c === ']' || c === '}') {
        flow = Math.max(0, flow - 1);
      }
    }
    if (flow === 0 && /(?:^|[:\-]\s)[|>][-+0-9]*\s*(?:#.*)?$/.test(body)) scalarIndent = indent;
  }
  return undefined;
}

/**
 * A JSON value shown in an error message: JSON text, cut to `max` characters. JSON.stringify recurses
 * once per level, and a value JSON.parse accepted may be nested thousands deep: such a value is named,
 * not printed.
 */
export function showValue(v: unknown, max = 120): string {
  if (tooDeepValue(v, 64)) return Array.isArray(v) ? '(a list nested more than 64 levels deep)' : '(an object nested more than 64 levels deep)';
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s === undefined) return String(v);
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}

/** Whether objects and lists in `v` nest more than `max` levels (an iterative walk). */
function tooDeepValue(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  let seen = 0;
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d > max) return true;
    // Wide values are cut in the message anyway; a bounded walk keeps this cheap.
    if (++seen > 10_000) return false;
    for (const c of Array.isArray(x) ? x : Object.values(x)) if (typeof c === 'object' && c !== null) stack.push([c, d + 1]);
  }
  return false;
}
