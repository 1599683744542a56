// Text the CLI prints to a terminal comes partly from files (safetensors metadata such as
// ss_sd_model_name, tensor and module names, config values quoted in errors, file names). Control
// characters in it would be executed by the terminal (escape sequences that move the cursor, rewrite
// the title, hide text), and bidirectional overrides would reorder what is shown. They are printed
// escaped instead, as \u001b etc.; newlines and tabs of the CLI's own layout are kept.

// C0 controls but \t and \n, DEL, C1 controls, the Unicode line/paragraph separators, and the
// bidirectional embeddings, overrides and isolates.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every character a terminal would act on shown as a \uXXXX escape. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON text with the same characters escaped. JSON.stringify escapes C0 controls but not DEL, C1
 * controls, U+2028/9 or bidi controls; as \uXXXX escapes they stay the same JSON values.
 */
export function terminalSafeJson(json: string): string {
  return terminalSafe(json);
}

/** One value on one line: also newlines and tabs escaped, and cut to `max` characters. */
export function terminalValue(text: string, max = 160): string {
  const clean = terminalSafe(text).replace(/[\t\n]/g, (c) => (c === '\n' ? '\\n' : '\\t'));
  return clean.length > max ? `${clean.slice(0, max)}… (${text.length} chars)` : clean;
}
