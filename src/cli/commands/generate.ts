// `lora-lab generate`: continue a prompt with a local Hugging Face causal LM, with a PEFT adapter when
// --adapter is given, streaming the text as it is produced; --json streams one JSON object per token
// with its log-probability and the most likely alternatives.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend, modelSizeLimit } from '../../runs/backendSetup';
import { openPlaygroundSession, streamSide, type GenerateRequest, type Side } from '../../playground/session';
import { InteropError } from '../../formats/adapters/interopError';
import { EngineError } from '../../engine/errors';
import type { StopReason } from '../../engine/generate';
import { CliError, numberFlag, parseFlags, UsageError, type CliCommand } from '../command';

const usage = `Usage: lora-lab generate --model DIR [--adapter DIR] --prompt TEXT [--max-tokens N] [--temperature T]
                         [--top-k K] [--seed S] [--ignore-eos] [--base-too] [--backend wasm|cpu|tensorflow] [--json]

Continues TEXT with a local Hugging Face causal LM (config.json + model.safetensors; Llama or GPT-2
family), through a PEFT LoRA/DoRA adapter when --adapter is given, printing the text as it is made.
The tokenizer is the folder's tokenizer.json, or UTF-8 bytes for a byte-vocabulary model (the examples).

  --max-tokens N    new tokens at most (default 64)
  --temperature T   0 = greedy, the most likely token each step (default); above 0 samples from softmax(logits / T)
  --top-k K         sample among the K most likely tokens only (default 0: all)
  --seed S          seeds the sampling (default 0): the same seed gives the same text
  --ignore-eos      keep going after the model's end-of-sequence token
  --base-too        with --adapter, also generate from the base model (printed first) to compare
  --json            one JSON object per line: {"side", "index", "id", "text", "piece", "logprob", "top"},
                    then {"side", "done", "stop", "tokens", "text"}; log-probs are natural logs under the
                    model's own distribution (temperature 1, whole vocabulary)

Example: lora-lab generate --model examples/models/tiny-llama --adapter runs/my-run/adapter --prompt "LoRA " --max-tokens 40`;

export const generateCommand: CliCommand = {
  name: 'generate',
  summary: 'Generate text from a local HF model (+ PEFT adapter), streaming',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
      'ignore-eos': { type: 'boolean', default: false },
      'base-too': { type: 'boolean', default: false },
      backend: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.model || values.prompt === undefined) throw new UsageError('--model and --prompt are required');
    if (values['base-too'] && !values.adapter) throw new UsageError('--base-too compares with an adapter: give --adapter DIR too');
    const backend = values.backend;
    if (backend !== undefined && backend !== 'wasm' && backend !== 'cpu' && backend !== 'tensorflow') throw new UsageError(`--backend must be wasm, cpu or tensorflow, got "${backend}"`);
    const temperature = numberFlag(values.temperature, '--temperature', { min: 0 }) ?? 0;
    const req: GenerateRequest = {
      prompt: values.prompt,
      maxTokens: numberFlag(values['max-tokens'], '--max-tokens', { integer: true, min: 1 }) ?? 64,
      temperature,
      topK: numberFlag(values['top-k'], '--top-k', { integer: true, min: 0 }) ?? 0,
      seed: numberFlag(values.seed, '--seed', { integer: true }) ?? 0,
      ignoreEos: values['ignore-eos'],
      alternatives: values.json ? 5 : 0,
    };
    if (req.topK && temperature === 0 && !values.json) process.stderr.write('note: --top-k has no effect with greedy decoding (--temperature 0)\n');
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
      await startBackend({ prefer: backend ?? 'wasm' });
      const session = await openPlaygroundSession(path.resolve(values.model), values.adapter ? path.resolve(values.adapter) : undefined, modelSizeLimit());
      try {
        if (!values.json) for (const n of session.notes) process.stderr.write(`note: ${n}\n`);
        const sides: Side[] = values.adapter ? (values['base-too'] ? ['base', 'adapter'] : ['adapter']) : ['base'];
        for (const side of sides) {
          if (!values.json && sides.length > 1) process.stdout.write(`── ${side === 'base' ? 'base model' : 'base + adapter'} ──\n`);
          if (!values.json) process.stdout.write(req.prompt);
          const it = streamSide(session, side, req, controller.signal);
          let text = '';
          let tokens = 0;
          let stop: StopReason;
          for (;;) {
            const r = await it.next();
            if (r.done) {
              stop = r.value;
              break;
            }
            const t = r.value;
            tokens++;
            text += t.text;
            if (values.json) {
              const top = t.top.map((c, i) => ({ id: c.id, piece: t.topPieces[i], logprob: c.logprob }));
              process.stdout.write(JSON.stringify({ side, index: t.index, id: t.id, text: t.text, piece: t.piece, logprob: t.logprob, top }) + '\n');
            } else {
              process.stdout.write(t.text);
            }
          }
          if (values.json) process.stdout.write(JSON.stringify({ side, done: true, stop, tokens, text, backend: tf.getBackend() }) + '\n');
          else process.stdout.write(`\n[${tokens} token(s), stopped: ${stopText(stop)}]\n`);
          if (stop === 'cancelled') return 130;
        }
      } finally {
        session.dispose();
      }
    } catch (e) {
      if (InteropError.is(e) || EngineError.is(e)) throw new CliError(e.message);
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};

function stopText(s: StopReason): string {
  switch (s) {
    case 'max-tokens':
      return '--max-tokens reached';
    case 'stop-token':
      return "the model's end-of-sequence token";
    case 'max-sequence':
      return "the model's longest sequence (n_positions)";
    case 'cancelled':
      return 'interrupted';
  }
}
