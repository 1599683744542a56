// A playground session: a local Hugging Face causal LM (Llama / GPT-2 folder) and, optionally, a PEFT
// adapter on it, loaded once, with the tokenizer, and generation from the base and from base + adapter
// on the same prompt and seed. Shared by `lora-lab generate` and the playground worker. The tfjs
// backend must be started by the caller.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadHfFolder, loadPeftAdapterDir, type LoadHfFolderOptions } from '../io/hfFolder';
import { buildCausalLm } from '../models/buildCausalLm';
import { idsTensor, type CausalLm } from '../models/causalLm';
import type { LoraLookup } from '../models/linear';
import { loadPeftModel } from '../models/peftAdapter';
import type { HfModelConfig } from '../formats/hfConfig';
import { InteropError } from '../formats/adapters/interopError';
import { generate, type GeneratedToken, type NextLogits, type SamplingOptions, type StopReason } from '../engine/generate';
import { bytesPlaygroundTokenizer, hfPlaygroundTokenizer, StreamDecoder, type PlaygroundTokenizer } from './tokenizer';

export type Side = 'base' | 'adapter';

export interface PlaygroundSession {
  readonly modelDir: string;
  readonly adapterDir?: string;
  readonly config: HfModelConfig;
  readonly tokenizer: PlaygroundTokenizer;
  /** The model's eos ids from config.json (generation stops there unless told not to). */
  readonly eosIds: number[];
  /** Notes from loading the adapter (ignored tensors, patterns), for the user. */
  readonly notes: string[];
  /** Next-token logits of one side; 'adapter' exists only when an adapter was given. */
  next(side: Side): NextLogits;
  dispose(): void;
}

/** One generated token as the CLI and the webview show it. */
export interface StreamedToken extends GeneratedToken {
  /** The new text this token made certain (may be '' while a multi-byte character is incomplete). */
  text: string;
  /** How the token reads on its own. */
  piece: string;
  /** The alternatives with their pieces. */
  topPieces: string[];
}

export interface GenerateRequest extends SamplingOptions {
  prompt: string;
  /** Keep generating after the model's eos token. */
  ignoreEos?: boolean;
}

function eosOf(config: HfModelConfig): number[] {
  const e = config.raw.eos_token_id;
  const list = Array.isArray(e) ? e : e === undefined || e === null ? [] : [e];
  return list.filter((x): x is number => Number.isInteger(x));
}

async function readIfExists(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new InteropError('bad-config', `${file}: cannot read it (${e.code ?? e.message})`, file);
  });
}

/** The last position's logits as a Float32Array [vocab]. */
function lastLogits(model: CausalLm, ids: readonly number[], lookup: LoraLookup | undefined): Float32Array {
  const out = tf.tidy(() => {
    const logits = model.forward(idsTensor([[...ids]], model.config.vocabSize), lookup); // [1, s, vocab]
    const [, s, v] = logits.shape;
    return logits.slice([0, s - 1, 0], [1, 1, v]).reshape([v]);
  });
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return data;
}

export async function openPlaygroundSession(modelDir: string, adapterDir: string | undefined, limits: LoadHfFolderOptions = {}): Promise<PlaygroundSession> {
  const dir = path.resolve(modelDir);
  const folder = await loadHfFolder(dir, limits);
  let tokenizer: PlaygroundTokenizer;
  if (folder.tokenizerJson) {
    tokenizer = hfPlaygroundTokenizer(folder.tokenizerJson, await readIfExists(path.join(dir, 'tokenizer_config.json')), path.join(dir, 'tokenizer.json'));
  } else if (folder.config.vocabSize >= 256) {
    // No tokenizer.json: a byte-level model (the examples: vocab_size 256, trained on UTF-8 bytes).
    tokenizer = bytesPlaygroundTokenizer();
  } else {
    throw new InteropError('bad-config', `${dir}: no tokenizer.json, and vocab_size ${folder.config.vocabSize} in config.json is too small for bytes (needs ≥ 256); add the model's tokenizer.json`, dir);
  }
  const base = buildCausalLm(folder.config, folder.weights, folder.weightFiles.join(', '));
  let adapted: { model: CausalLm; lookup: LoraLookup; dispose(): void } | undefined;
  let notes: string[] = [];
  const adir = adapterDir ? path.resolve(adapterDir) : undefined;
  try {
    if (adir) {
      const a = await loadPeftAdapterDir(adir);
      // modules_to_save copies and adapted embedding tables change the weights: a second model for that side.
      const loaded = loadPeftModel(folder.config, folder.weights, a.parsed, a.weights, { baseSource: folder.weightFiles.join(', '), adapterSource: a.weightsFile });
      adapted = { model: loaded.model, lookup: loaded.adapter.lookup, dispose: () => (loaded.adapter.dispose(), loaded.model.dispose()) };
      notes = loaded.adapter.notes;
    }
  } catch (e) {
    base.dispose();
    throw e;
  }
  return {
    modelDir: dir,
    adapterDir: adir,
    config: folder.config,
    tokenizer,
    eosIds: eosOf(folder.config),
    notes,
    next(side) {
      if (side === 'base') return (ids) => lastLogits(base, ids, undefined);
      if (!adapted) throw new InteropError('bad-input', 'no adapter was loaded: only the base model can generate');
      const a = adapted;
      return (ids) => lastLogits(a.model, ids, a.lookup);
    },
    dispose() {
      base.dispose();
      adapted?.dispose();
    },
  };
}

/** The prompt as ids, refusing an empty one and ids the model's vocabulary does not have. */
export function encodePrompt(session: PlaygroundSession, prompt: string): number[] {
  const ids = session.tokenizer.encode(prompt);
  if (ids.length === 0) throw new InteropError('bad-input', 'the prompt is empty: type some text to continue');
  const over = ids.find((id) => id >= session.config.vocabSize);
  if (over !== undefined) throw new InteropError('bad-input', `the prompt encodes to token id ${over}, but the model's vocab_size is ${session.config.vocabSize}`);
  return ids;
}

/** Generates from one side, streaming tokens with their text; returns why it stopped. */
export async function* streamSide(session: PlaygroundSession, side: Side, req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<StreamedToken, StopReason> {
  const prompt = encodePrompt(session, req.prompt);
  // GPT-2's positions are a learned table; Llama's rotary ones have no hard end, max_position_embeddings is the trained length.
  const maxSequence = session.config.modelType === 'gpt2' ? session.config.maxPositions : undefined;
  const decoder = new StreamDecoder(session.tokenizer, prompt);
  const it = generate(session.next(side), prompt, { ...req, stopIds: req.ignoreEos ? [] : (req.stopIds ?? session.eosIds), maxSequence }, signal);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    const t = r.value;
    yield { ...t, text: decoder.push(t.id), piece: session.tokenizer.piece(t.id), topPieces: t.top.map((c) => session.tokenizer.piece(c.id)) };
  }
}
