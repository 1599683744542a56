// The playground's tokenizer: a model folder's tokenizer.json through @huggingface/tokenizers, or raw
// UTF-8 bytes when the model has a byte vocabulary (the examples: vocab_size 256, no tokenizer.json).
// Decoding streams: a token that ends inside a multi-byte character shows nothing until the character
// is complete, so the text never flickers a replacement character.
import { Tokenizer } from '@huggingface/tokenizers';
import { InteropError } from '../formats/adapters/interopError';

export interface PlaygroundTokenizer {
  kind: 'bytes' | 'tokenizer';
  encode(text: string): number[];
  /** The text of a whole id sequence. */
  decode(ids: readonly number[]): string;
  /** How one token reads on its own, for the per-token display (bytes that are not printable as <0xNN>). */
  piece(id: number): string;
}

export function bytesPlaygroundTokenizer(): PlaygroundTokenizer {
  const enc = new TextEncoder();
  return {
    kind: 'bytes',
    encode: (t) => Array.from(enc.encode(t)),
    decode: (ids) => new TextDecoder('utf-8').decode(Uint8Array.from(ids)),
    piece: (id) => (id >= 0x20 && id < 0x7f ? String.fromCharCode(id) : id === 0x0a ? '\n' : `<0x${id.toString(16).toUpperCase().padStart(2, '0')}>`),
  };
}

export function hfPlaygroundTokenizer(tokenizerJson: string, tokenizerConfigJson: string | undefined, source: string): PlaygroundTokenizer {
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(JSON.parse(tokenizerJson) as object, tokenizerConfigJson ? (JSON.parse(tokenizerConfigJson) as object) : {});
  } catch (e) {
    throw new InteropError('bad-config', `${source}: cannot load the tokenizer (${(e as Error).message})`, source);
  }
  return {
    kind: 'tokenizer',
    encode(t) {
      const enc = tok.encode(t, { add_special_tokens: false });
      const bad = enc.ids.findIndex((id) => !Number.isInteger(id));
      if (bad >= 0) throw new InteropError('bad-input', `${source}: the tokenizer has no id for "${enc.tokens[bad]}" (and no usable unk_token)`, source);
      return enc.ids;
    },
    decode: (ids) => tok.decode([...ids], { skip_special_tokens: false }),
    piece: (id) => tok.decode([id], { skip_special_tokens: false }),
  };
}

/**
 * Turns generated ids into text deltas. The prompt is decoded with them, so a tokenizer that joins
 * tokens with spaces (or strips a leading one) shows the continuation as it reads after the prompt.
 * Each push returns the new text that is now certain: a trailing U+FFFD (an incomplete UTF-8
 * character, or a byte-fallback token waiting for its partners) is held back.
 */
export class StreamDecoder {
  private readonly ids: number[];
  private shown: string;

  constructor(
    private readonly tokenizer: PlaygroundTokenizer,
    prompt: readonly number[] = [],
  ) {
    this.ids = [...prompt];
    this.shown = prompt.length ? tokenizer.decode(prompt).replace(/\uFFFD+$/, '') : '';
  }

  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids).replace(/\uFFFD+$/, '');
    // Decoding is prefix-stable for the tokenizers we meet; if a later token rewrote earlier text, show nothing new.
    if (text.length <= this.shown.length || !text.startsWith(this.shown)) return '';
    const delta = text.slice(this.shown.length);
    this.shown = text;
    return delta;
  }
}
