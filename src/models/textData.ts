// Text datasets for causal-LM fine-tuning: a .txt file or .jsonl with a "text" field, tokenised (raw
// UTF-8 bytes, or a tokenizer.json through @huggingface/tokenizers), cut into fixed-length windows,
// the last `evalFraction` of windows held out (a contiguous tail, so eval text never overlaps train).
import { Tokenizer } from '@huggingface/tokenizers';
import { InteropError } from '../formats/adapters/interopError';

export interface TextTokenizer {
  kind: 'bytes' | 'tokenizer';
  encode(text: string): number[];
  /** Ids the tokenizer can produce are below this. */
  vocabSize: number;
}

export function bytesTokenizer(): TextTokenizer {
  const enc = new TextEncoder();
  return { kind: 'bytes', vocabSize: 256, encode: (t) => Array.from(enc.encode(t)) };
}

/** A tokenizer.json (and optional tokenizer_config.json) loaded offline. */
export function hfTokenizer(tokenizerJson: string, tokenizerConfigJson?: string, source = 'tokenizer.json'): TextTokenizer {
  let tok: Tokenizer;
  let vocab = 0;
  try {
    const json = JSON.parse(tokenizerJson) as { model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] };
    tok = new Tokenizer(json, tokenizerConfigJson ? (JSON.parse(tokenizerConfigJson) as object) : {});
    const v = json.model?.vocab;
    vocab = Array.isArray(v) ? v.length : v ? Math.max(-1, ...Object.values(v)) + 1 : 0;
    for (const a of json.added_tokens ?? []) vocab = Math.max(vocab, a.id + 1);
  } catch (e) {
    throw new InteropError('bad-config', `${source}: cannot load the tokenizer (${(e as Error).message})`, source);
  }
  return {
    kind: 'tokenizer',
    vocabSize: vocab,
    encode(t) {
      const enc = tok.encode(t, { add_special_tokens: false });
      const bad = enc.ids.findIndex((id) => !Number.isInteger(id));
      if (bad >= 0) throw new InteropError('bad-input', `${source}: the tokenizer has no id for token "${enc.tokens[bad]}" (and no usable unk_token)`, source);
      return enc.ids;
    },
  };
}

/** The documents of a dataset file: the whole .txt, or each .jsonl line's "text". */
export function datasetDocuments(text: string, fileName: string): string[] {
  if (!fileName.toLowerCase().endsWith('.jsonl')) return [text];
  const docs: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new InteropError('bad-input', `${fileName}:${i + 1}: not valid JSON (${(e as Error).message})`, fileName);
    }
    const t = (rec as { text?: unknown } | null)?.text;
    if (typeof t !== 'string') throw new InteropError('bad-input', `${fileName}:${i + 1}: expected an object with a string "text" field`, fileName);
    docs.push(t);
  });
  return docs;
}

export interface TokenWindows {
  seqLen: number;
  train: Int32Array[];
  eval: Int32Array[];
  totalTokens: number;
}

/** Tokenise documents (joined by "\n"), cut into non-overlapping windows of seqLen tokens and split. */
export function makeWindows(docs: string[], tokenizer: TextTokenizer, seqLen: number, evalFraction: number, fileName = 'dataset'): TokenWindows {
  const ids = tokenizer.encode(docs.join('\n'));
  const n = Math.floor(ids.length / seqLen);
  const windows: Int32Array[] = [];
  for (let i = 0; i < n; i++) windows.push(Int32Array.from(ids.slice(i * seqLen, (i + 1) * seqLen)));
  const nEval = evalFraction > 0 ? Math.max(1, Math.round(n * evalFraction)) : 0;
  if (n - nEval < 1) {
    throw new InteropError(
      'bad-input',
      `${fileName}: ${ids.length} tokens make ${n} window(s) of ${seqLen}; need at least ${nEval + 1} (1 to train${nEval ? `, ${nEval} to evaluate` : ''}). Use more text or a shorter seqLen`,
      fileName,
    );
  }
  return { seqLen, train: windows.slice(0, n - nEval), eval: windows.slice(n - nEval), totalTokens: ids.length };
}
