// Describes why a text is not JSON by position and kind of problem, never by quoting it: V8's
// JSON.parse messages quote the start of the text ("root:x:0:0"... is not valid JSON), and the text
// may be any file a link pointed at.
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';

const WHAT: Record<string, string> = {
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
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (!first) {
    // jsonc-parser accepted what JSON.parse did not; still say nothing of the text.
    return 'not valid JSON';
  }
  const { line, column } = lineColumnAt(text, first.offset);
  const code = printParseErrorCode(first.error);
  return `not valid JSON (${WHAT[code] ?? code} at line ${line}, column ${column})`;
}
