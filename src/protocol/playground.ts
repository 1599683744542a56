// Messages of the playground ("LoRA Lab: Try Adapter"): between its webview and the extension host, and
// between the host and the playground worker (dist/playgroundWorker.js), which runs the model off the
// host thread. One direction per union, discriminated by `type` (STYLE.md §4). Everything the webview
// sends is untrusted: the host checks it with `parsePlaygroundMessage`.

/** Which model a stream comes from: the base alone, or base + adapter. */
export type PlaygroundSide = 'base' | 'adapter';

export type PlaygroundStop = 'max-tokens' | 'stop-token' | 'max-sequence' | 'cancelled' | 'failed';

/** The generation settings the prompt box sends. */
export interface PlaygroundRequest {
  prompt: string;
  /** New tokens at most, 1–1024. */
  maxTokens: number;
  /** 0 = greedy; above 0 samples from softmax(logits / T). */
  temperature: number;
  /** Sample among the k most likely tokens only (0: all). */
  topK: number;
  seed: number;
  /** Keep going after the model's end-of-sequence token. */
  ignoreEos: boolean;
}

/** One generated token as shown: its text, log-probability and the most likely alternatives. */
export interface PlaygroundToken {
  index: number;
  id: number;
  /** Text this token made certain (may be '' inside a multi-byte character). */
  text: string;
  /** How the token reads on its own (<0xNN> for a byte that is not printable). */
  piece: string;
  /** Natural log-probability under the model's own distribution (temperature 1). */
  logprob: number;
  top: { id: number; piece: string; logprob: number }[];
}

/** What is loaded, for the header. */
export interface PlaygroundInfo {
  modelDir: string;
  adapterDir?: string;
  /** "llama" / "gpt2" family and the declared model_type. */
  modelType: string;
  tokenizer: 'bytes' | 'tokenizer';
  vocabSize: number;
  /** Notes from loading the adapter (ignored tensors, patterns). */
  notes: string[];
  backend: string;
}

export type ToPlaygroundWebview =
  /** The model is loading (sent before the first `didLoad`). */
  | { type: 'didStartLoading'; modelDir: string; adapterDir?: string }
  /** The model (and adapter) loaded; the prompt box can generate. */
  | { type: 'didLoad'; info: PlaygroundInfo }
  /** Loading failed; the message names the file and what was expected. */
  | { type: 'didFailLoad'; message: string }
  /** A generation began on these sides (side by side when both). */
  | { type: 'didStartGeneration'; genId: number; sides: PlaygroundSide[]; prompt: string; promptTokens: number }
  /** A batch of new tokens of one side, in order. */
  | { type: 'didTokens'; genId: number; side: PlaygroundSide; tokens: PlaygroundToken[] }
  /** One side finished; `error` when it failed. */
  | { type: 'didFinishSide'; genId: number; side: PlaygroundSide; stop: PlaygroundStop; error?: string };

export type FromPlaygroundWebview =
  /** The page loaded: send the current state again. */
  | { type: 'ready' }
  /** Generate from every loaded side with these settings (a running generation is cancelled first). */
  | { type: 'generate'; request: PlaygroundRequest }
  /** Stop the running generation after the current token. */
  | { type: 'cancel' }
  /** Ask the user for another adapter folder (or the base model's folder). */
  | { type: 'chooseAdapter' }
  | { type: 'chooseModel' };

export type ToPlaygroundWorker =
  /** Load a model folder (and a PEFT adapter folder) once; the worker answers didLoad or didFailLoad. */
  | { type: 'open'; modelDir: string; adapterDir?: string; wasmDir?: string; threads?: number }
  /** Generate on the loaded sides; tokens stream back as didTokens. */
  | { type: 'generate'; genId: number; request: PlaygroundRequest }
  /** Stop generation `genId` after its current token. */
  | { type: 'cancel'; genId: number };

export type FromPlaygroundWorker =
  | Extract<ToPlaygroundWebview, { type: 'didLoad' | 'didFailLoad' | 'didStartGeneration' | 'didTokens' | 'didFinishSide' }>
  /** A log line for the output channel. */
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string };

export const PLAYGROUND_LIMITS = { maxTokens: 1024, maxPromptChars: 100_000, maxTopK: 1_000_000, maxTemperature: 100 } as const;

/** Defaults of the prompt box (and of `lora-lab generate`). */
export const PLAYGROUND_DEFAULTS: Omit<PlaygroundRequest, 'prompt'> = { maxTokens: 64, temperature: 0, topK: 0, seed: 0, ignoreEos: false };

/** Checks a message from the webview (untrusted), naming the field that is wrong. */
export function parsePlaygroundMessage(raw: unknown): FromPlaygroundWebview {
  const m = raw as { type?: unknown; request?: unknown } | null;
  if (!m || typeof m !== 'object') throw new Error('playground message: expected an object');
  switch (m.type) {
    case 'ready':
    case 'cancel':
    case 'chooseAdapter':
    case 'chooseModel':
      return { type: m.type };
    case 'generate':
      return { type: 'generate', request: parsePlaygroundRequest(m.request) };
    default:
      throw new Error(`playground message: unknown type ${JSON.stringify(m.type)}`);
  }
}

export function parsePlaygroundRequest(raw: unknown): PlaygroundRequest {
  const r = raw as Record<string, unknown> | null;
  if (!r || typeof r !== 'object') throw new Error('generate: expected a request object');
  const num = (k: string, min: number, max: number, integer: boolean): number => {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      throw new Error(`generate: ${k} should be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  if (typeof r.prompt !== 'string' || r.prompt.length > PLAYGROUND_LIMITS.maxPromptChars) throw new Error(`generate: prompt should be a string of at most ${PLAYGROUND_LIMITS.maxPromptChars} characters`);
  if (typeof r.ignoreEos !== 'boolean') throw new Error('generate: ignoreEos should be true or false');
  return {
    prompt: r.prompt,
    maxTokens: num('maxTokens', 1, PLAYGROUND_LIMITS.maxTokens, true),
    temperature: num('temperature', 0, PLAYGROUND_LIMITS.maxTemperature, false),
    topK: num('topK', 0, PLAYGROUND_LIMITS.maxTopK, true),
    seed: num('seed', 0, 2 ** 31 - 1, true),
    ignoreEos: r.ignoreEos,
  };
}
