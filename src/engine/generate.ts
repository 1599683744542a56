// Autoregressive generation for a causal LM, independent of the model code: the caller passes a function
// from token ids to the next-token logits, this file decides the next token (greedy, top-k, temperature)
// and reports each one with its log-probability. Sampling is seeded (src/engine/rng.ts), so the same
// seed, prompt and model give the same text.
import { EngineError } from './errors';
import { Rng } from './rng';

/** Next-token logits [vocab] for the sequence `ids` (the model's last position). */
export type NextLogits = (ids: readonly number[]) => Float32Array | Promise<Float32Array>;

export interface SamplingOptions {
  /** New tokens to generate at most. */
  maxTokens: number;
  /** 0 = greedy (argmax); otherwise logits are divided by it before sampling. */
  temperature: number;
  /** Sample among the k most likely tokens only; 0 or undefined = the whole vocabulary. */
  topK?: number;
  /** Seeds the sampling stream; ignored when greedy. */
  seed?: number;
  /** Stop after producing one of these ids (the model's eos), which is reported. */
  stopIds?: readonly number[];
  /** Longest sequence (prompt + generated) the model accepts; generation stops there. */
  maxSequence?: number;
  /** How many of the most likely alternatives to report per step (0: none). */
  alternatives?: number;
}

export interface TokenChoice {
  id: number;
  /** log p(id | prefix) under the model's own distribution (temperature 1, whole vocabulary). */
  logprob: number;
}

export interface GeneratedToken extends TokenChoice {
  /** 0-based index among the generated tokens. */
  index: number;
  /** The most likely tokens at this step, most likely first (the chosen one may be among them). */
  top: TokenChoice[];
}

export type StopReason = 'max-tokens' | 'stop-token' | 'max-sequence' | 'cancelled';

/** Checks the options, naming the field and the value that is wrong. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (field: string, want: string, got: unknown) => {
    throw new EngineError('invalid-argument', `${field} should be ${want}, got ${String(got)}`);
  };
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) bad('maxTokens', 'a positive integer', o.maxTokens);
  if (!Number.isFinite(o.temperature) || o.temperature < 0) bad('temperature', 'a number ≥ 0 (0 = greedy)', o.temperature);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) bad('topK', 'an integer ≥ 0 (0 = no limit)', o.topK);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) bad('seed', 'an integer', o.seed);
}

/** log-softmax of logits / t, in float64. */
export function logSoftmax(logits: ArrayLike<number>, t = 1): Float64Array {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i] / t);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] / t - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = logits[i] / t - lse;
  return out;
}

/** Indices of the k largest values, largest first (ties: the lower index first, as argmax). */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  const kk = Math.min(k, n);
  // A sorted window of size k: vocabularies are large and k small, so this beats sorting everything.
  const idx: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (idx.length === kk && !(v > values[idx[kk - 1]])) continue;
    let j = idx.length === kk ? kk - 1 : idx.length;
    while (j > 0 && v > values[idx[j - 1]]) j--;
    idx.splice(j, 0, i);
    if (idx.length > kk) idx.pop();
  }
  return idx;
}

/**
 * Picks the next token from logits: argmax when temperature is 0, else a draw from softmax(logits / T)
 * restricted to the top k. `rng` is needed only when sampling.
 */
export function chooseToken(logits: ArrayLike<number>, opts: Pick<SamplingOptions, 'temperature' | 'topK'>, rng?: Rng): number {
  if (logits.length === 0) throw new EngineError('invalid-argument', 'the model returned empty logits');
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i])) throw new EngineError('invalid-argument', `the model's logit for token ${i} is NaN`);
  }
  if (opts.temperature === 0) return topKIndices(logits, 1)[0];
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, logits.length) : logits.length;
  const keep = k === logits.length ? Array.from({ length: k }, (_, i) => i) : topKIndices(logits, k);
  const kept = keep.map((i) => logits[i]);
  const lp = logSoftmax(kept, opts.temperature);
  if (!rng) throw new EngineError('invalid-argument', 'sampling with temperature > 0 needs a seeded generator');
  let u = rng.uniform();
  for (let j = 0; j < keep.length; j++) {
    u -= Math.exp(lp[j]);
    if (u < 0) return keep[j];
  }
  // Rounding left u a hair above 0: the last kept token.
  return keep[keep.length - 1];
}

/** Yields to the event loop so a cancel message (or a UI update) can arrive between tokens. */
const macrotask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Generates up to `maxTokens` tokens after `prompt`, one at a time, each reported as soon as it is
 * chosen. Returns why it stopped. Each step runs the model on the whole sequence so far (the models
 * have no key/value cache), which is exact and, for the small models the engine runs, fast enough.
 */
export async function* generate(next: NextLogits, prompt: readonly number[], opts: SamplingOptions, signal?: AbortSignal): AsyncGenerator<GeneratedToken, StopReason> {
  checkSamplingOptions(opts);
  if (prompt.length === 0) throw new EngineError('invalid-argument', 'the prompt is empty: generation needs at least one token to start from');
  if (opts.maxSequence !== undefined && prompt.length >= opts.maxSequence) {
    throw new EngineError('invalid-argument', `the prompt has ${prompt.length} tokens; the model takes at most ${opts.maxSequence}, leaving no room to generate`);
  }
  const rng = opts.temperature > 0 ? Rng.derive(opts.seed ?? 0, 'generate') : undefined;
  const stop = new Set(opts.stopIds ?? []);
  const ids = [...prompt];
  for (let index = 0; index < opts.maxTokens; index++) {
    if (signal?.aborted) return 'cancelled';
    if (opts.maxSequence !== undefined && ids.length >= opts.maxSequence) return 'max-sequence';
    const logits = await next(ids);
    const id = chooseToken(logits, opts, rng);
    const lp = logSoftmax(logits);
    const top = opts.alternatives ? topKIndices(logits, opts.alternatives).map((i) => ({ id: i, logprob: lp[i] })) : [];
    ids.push(id);
    yield { index, id, logprob: lp[id], top };
    if (stop.has(id)) return 'stop-token';
    await macrotask();
  }
  return 'max-tokens';
}
