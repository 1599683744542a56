// `lora-lab logits`: run a local Hugging Face model (optionally with a PEFT adapter) on token ids and
// write the logits as {"shape": [batch, seq, vocab], "data": [...]}.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend, modelSizeLimit } from '../../runs/backendSetup';
import { loadHfFolder, loadPeftAdapterDir } from '../../io/hfFolder';
import { buildCausalLm } from '../../models/buildCausalLm';
import { idsTensor } from '../../models/causalLm';
import { loadPeftModel } from '../../models/peftAdapter';
import { InteropError } from '../../formats/adapters/interopError';
import { CliError, parseFlags, UsageError, type CliCommand } from '../command';
import { terminalSafe, terminalSafeJson } from '../terminalText';
import { NotRegularFileError, readRegularText } from '../../io/regularFile';
import { describeJsonSyntaxError } from '../../formats/jsonText';

const usage = `Usage: lora-lab logits --model DIR [--adapter DIR] --input-ids FILE.json --out FILE.json [--backend wasm|cpu|tensorflow] [--json]

Runs a local Hugging Face causal LM (config.json + model.safetensors; Llama or GPT-2 family), with a
PEFT LoRA/DoRA adapter when --adapter is given, on the token ids in FILE.json (a JSON array of rows of
equal length, e.g. [[76, 111, 82, 65]]) and writes {"shape": [batch, seq, vocab], "data": [...]}
(row-major float32 values). --json prints {"out", "shape", "backend", "notes"} instead of a sentence.

Example: lora-lab logits --model ./tiny-llama --adapter ./my-adapter --input-ids ids.json --out logits.json`;

export async function readInputIds(file: string): Promise<number[][]> {
  let rows: unknown;
  let text: string;
  try {
    text = await readRegularText(file);
  } catch (e) {
    if (NotRegularFileError.is(e)) throw new CliError(e.message);
    throw new CliError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    rows = JSON.parse(text);
  } catch {
    throw new CliError(`${file}: ${describeJsonSyntaxError(text)}`);
  }
  if (Array.isArray(rows) && rows.every((x) => typeof x === 'number')) rows = [rows];
  if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r) && r.every((x) => typeof x === 'number'))) {
    throw new CliError(`${file}: expected a JSON array of token-id rows, e.g. [[1, 2, 3]]`);
  }
  return rows as number[][];
}

export const logitsCommand: CliCommand = {
  name: 'logits',
  summary: 'Logits of a local HF model (+ PEFT adapter) for token ids',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      'input-ids': { type: 'string' },
      out: { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.model || !values['input-ids'] || !values.out) throw new UsageError('--model, --input-ids and --out are required');
    const backend = values.backend;
    if (backend !== undefined && backend !== 'wasm' && backend !== 'cpu' && backend !== 'tensorflow') throw new UsageError(`--backend must be wasm, cpu or tensorflow, got "${backend}"`);
    const rows = await readInputIds(values['input-ids']);
    try {
      await startBackend({ prefer: backend ?? 'wasm' });
      const folder = await loadHfFolder(path.resolve(values.model), modelSizeLimit());
      const adapterDir = values.adapter ? await loadPeftAdapterDir(path.resolve(values.adapter)) : undefined;
      // With an adapter: modules_to_save copies and adapted embedding tables go into the weights, LoRA onto the layers.
      const loaded = adapterDir ? loadPeftModel(folder.config, folder.weights, adapterDir.parsed, adapterDir.weights, { baseSource: folder.weightFiles.join(', '), adapterSource: adapterDir.weightsFile }) : undefined;
      const model = loaded?.model ?? buildCausalLm(folder.config, folder.weights, folder.weightFiles.join(', '));
      const adapter = loaded?.adapter;
      const notes = adapter?.notes ?? [];
      if (!values.json) for (const n of notes) process.stderr.write(`note: ${terminalSafe(n)}\n`);
      let logits: tf.Tensor;
      try {
        logits = tf.tidy(() => model.forward(idsTensor(rows, folder.config.vocabSize), adapter?.lookup));
      } catch (e) {
        // Token ids out of range, ragged rows, a sequence longer than the model's positions.
        if (InteropError.is(e, 'bad-input')) throw new CliError(`${values['input-ids']}: ${e.message}`);
        throw e;
      } finally {
        adapter?.dispose();
        model.dispose();
      }
      const out = { shape: logits.shape, data: Array.from(await logits.data()) };
      logits.dispose();
      try {
        await fs.writeFile(values.out, JSON.stringify(out));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError(`--out ${values.out}: cannot write it (${code === 'ENOENT' ? 'its folder does not exist' : (code ?? (e as Error).message)})`);
      }
      if (values.json) process.stdout.write(terminalSafeJson(JSON.stringify({ out: path.resolve(values.out), shape: out.shape, backend: tf.getBackend(), notes })) + '\n');
      else process.stdout.write(`wrote logits [${out.shape.join(', ')}] to ${values.out} (backend ${tf.getBackend()})\n`);
    } catch (e) {
      if (InteropError.is(e)) throw new CliError(e.message);
      throw e;
    }
  },
};
