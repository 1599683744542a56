// `lora-lab merge`: PEFT's merge_and_unload on disk. Folds a LoRA/DoRA adapter into the base weights and
// writes a loadable Hugging Face folder (config.json + model.safetensors in the base dtypes). NaN/Inf in
// any merged weight aborts before anything is written, as PEFT's safe_merge does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackend, modelSizeLimit } from '../../runs/backendSetup';
import { loadHfFolder, loadPeftAdapterDir, writeMergedFolder } from '../../io/hfFolder';
import { baseNameOf, loadPeftModel } from '../../models/peftAdapter';
import { mergeAdapterWeights } from '../../models/merge';
import { InteropError } from '../../formats/adapters/interopError';
import { CliError, parseFlags, UsageError, type CliCommand } from '../command';
import { terminalSafe, terminalSafeJson } from '../terminalText';

const usage = `Usage: lora-lab merge --model DIR --adapter DIR --out DIR [--force] [--json]

Merges a PEFT LoRA (or DoRA) adapter into its base model: W' = W + (α/r)·B·A for every adapted layer
(DoRA: rescaled per output feature), modules_to_save and trained biases copied in. Writes a Hugging Face
folder (config.json, model.safetensors, tokenizer files) that loads without the adapter. Refuses to write
if any merged value is NaN or Inf.

Options:
  --force   write into an existing non-empty --out folder
  --json    print a JSON summary`;

function withConfig(configText: string, changes: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(configText) as Record<string, unknown>), ...changes }, null, 2) + '\n';
}

export const mergeCommand: CliCommand = {
  name: 'merge',
  summary: 'Merge a PEFT adapter into its base model (merge_and_unload)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.model || !values.adapter || !values.out) throw new UsageError('--model, --adapter and --out are required');
    const out = path.resolve(values.out);
    const outStat = fs.statSync(out, { throwIfNoEntry: false });
    if (outStat && !outStat.isDirectory()) throw new CliError(`--out ${out}: is a file; expected a folder for the merged model`);
    const real = (p: string) => fs.realpathSync(p, { encoding: 'utf8' });
    for (const [flag, dir] of [['--model', values.model], ['--adapter', values.adapter]] as const) {
      // --force would otherwise overwrite the weights the merge reads from.
      if (outStat && fs.existsSync(dir) && real(out) === real(dir)) throw new CliError(`--out ${out} is the ${flag} folder; write the merged model to another folder`);
    }
    if (!values.force && outStat && fs.readdirSync(out).length > 0) throw new CliError(`${out} exists and is not empty (use --force to write into it)`);
    try {
      await startBackend({ prefer: 'wasm' });
      const folder = await loadHfFolder(path.resolve(values.model), modelSizeLimit());
      const adapterDir = await loadPeftAdapterDir(path.resolve(values.adapter));
      // overrides: modules_to_save copies, trained biases and adapted embedding tables (W + ΔW), written as they are.
      const { model, adapter, overrides } = loadPeftModel(folder.config, folder.weights, adapterDir.parsed, adapterDir.weights, { baseSource: folder.weightFiles.join(', '), adapterSource: adapterDir.weightsFile });
      let merged;
      try {
        merged = mergeAdapterWeights(model, adapter.modules, path.basename(adapterDir.dir));
      } finally {
        adapter.dispose();
        model.dispose();
      }
      for (const [k, v] of Object.entries(overrides)) {
        if (!v.data.every((x) => Number.isFinite(x))) throw new InteropError('non-finite', `NaNs detected in "${k}" from the adapter; nothing was written`);
        // A tensor that replaces nothing would be an unexpected key for transformers (the notes name it).
        // An untied lm_head (modules_to_save on a tied one) is a tensor the base checkpoint does not store.
        const name = baseNameOf(folder.weights, k) ?? (k === 'lm_head.weight' && !model.config.tieWordEmbeddings ? k : undefined);
        if (name !== undefined && !merged.has(name)) merged.set(name, v);
      }
      // A resized vocabulary or an untied lm_head goes into the merged config.json too.
      const configText =
        model.config.vocabSize === folder.config.vocabSize && model.config.tieWordEmbeddings === folder.config.tieWordEmbeddings
          ? folder.configText
          : withConfig(folder.configText, { vocab_size: model.config.vocabSize, tie_word_embeddings: model.config.tieWordEmbeddings });
      const result = await writeMergedFolder({ ...folder, configText }, merged, out);
      const summary = { out, mergedModules: adapter.modules.size, replacedTensors: merged.size, files: result.files, notes: adapter.notes };
      if (values.json) process.stdout.write(terminalSafeJson(JSON.stringify(summary)) + '\n');
      else {
        for (const n of adapter.notes) process.stderr.write(`note: ${terminalSafe(n)}\n`);
        process.stdout.write(`merged ${adapter.modules.size} LoRA module(s) into ${out} (${result.files.join(', ')})\n`);
      }
    } catch (e) {
      if (InteropError.is(e)) throw new CliError(e.message);
      throw e;
    }
  },
};
