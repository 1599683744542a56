// `lora-lab convert`: export for deployment. A PEFT adapter becomes llama.cpp's adapter GGUF or an
// mlx-lm adapter folder; a Hugging Face model folder becomes a llama.cpp model GGUF. For an adapter,
// the relative ΔW error of every module (rebuilt from the bytes about to be written, as the target
// applies them) is printed before anything is written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackend, modelSizeLimit } from '../../runs/backendSetup';
import { loadHfFolder, loadPeftAdapterDir, type HfFolder } from '../../io/hfFolder';
import { writeGgufFile } from '../../io/ggufFile';
import { writeSafetensors } from '../../io/safetensorsFile';
import { writeFileAtomic } from '../../io/atomic';
import { adapterFactors } from '../../models/adapterFactors';
import { loraToGguf, type ConvertedModule } from '../../formats/gguf/loraToGguf';
import { modelToGguf } from '../../formats/gguf/modelToGguf';
import { llamaCppArch } from '../../formats/gguf/llamaCppNames';
import { loraToMlx } from '../../formats/adapters/mlxWriter';
import type { GgufTensorType } from '../../formats/gguf/gguf';
import { InteropError } from '../../formats/adapters/interopError';
import { RUN_INFO_FILE, loadRun } from '../../runs/runStore';
import { CliError, parseFlags, UsageError, type CliCommand } from '../command';

const usage = `Usage: lora-lab convert ADAPTER_DIR|RUN_DIR --to gguf|mlx --out PATH [--model DIR] [--dtype f32|f16|bf16] [--force] [--json]
       lora-lab convert MODEL_DIR --to gguf --out FILE.gguf [--dtype f32|f16|bf16] [--force] [--json]

Exports for deployment.
  A PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors), or a LoRA Lab run folder (its adapter/):
    --to gguf  llama.cpp's LoRA adapter GGUF (--out FILE.gguf): load it with llama.cpp's --lora, or as an
               ADAPTER in an Ollama Modelfile, or as a LoRA in LM Studio, next to the base model's GGUF.
    --to mlx   an mlx-lm adapter folder (--out DIR: adapters.safetensors + adapter_config.json) for
               mlx_lm.generate --adapter-path DIR.
    The base model folder (--model DIR, or the adapter's base_model_name_or_path when that folder exists)
    is read to apply the adapter as LoRA Lab does and to check it fits. Before writing, the relative
    error of every layer's ΔW = s·B·A as the target will apply it is printed. DoRA goes to mlx-lm
    (fine_tune_type "dora"); llama.cpp has none, so a DoRA adapter to GGUF is refused, as are
    modules_to_save (merge first: lora-lab merge), LoRA on an embedding table for mlx-lm, and for
    GGUF where the table is tied to lm_head.
  A Hugging Face model folder (config.json + model.safetensors; Llama, Mistral, Qwen2 or GPT-2):
    --to gguf  a llama.cpp model GGUF (--out FILE.gguf), the base for a GGUF adapter, Ollama or LM Studio.
               A byte-level BPE tokenizer.json is carried over; other tokenizers are not (token ids only).

Options:
  --dtype   tensor type: adapters default to f32, models to f16 (1-D tensors are always f32)
  --force   overwrite --out
  --json    print a JSON summary (with every module's error) instead of the table`;

const DTYPES: Record<string, GgufTensorType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

function fmtErr(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return x.toExponential(2);
}

/** The per-module table printed before writing. */
export function formatConversionTable(modules: ConvertedModule[]): string {
  const w = Math.max(6, ...modules.map((m) => m.module.length));
  const t = Math.max(6, ...modules.map((m) => m.target.length));
  const lines = [`${'module'.padEnd(w)}  ${'target'.padEnd(t)}  rank  ‖ΔW‖_F      rel. ΔW error`];
  for (const m of modules) lines.push(`${m.module.padEnd(w)}  ${m.target.padEnd(t)}  ${String(m.rank).padStart(4)}  ${m.norm.toExponential(3).padEnd(10)}  ${fmtErr(m.relError)}`);
  const worst = modules.reduce((a, m) => Math.max(a, m.relError), 0);
  lines.push(`max rel. ΔW error ${fmtErr(worst)} over ${modules.length} module(s)`);
  return lines.join('\n');
}

async function baseFolder(adapterDir: string, flag: string | undefined, baseName: string | undefined): Promise<HfFolder> {
  if (flag) return loadHfFolder(path.resolve(flag), modelSizeLimit());
  const candidates = baseName ? [path.resolve(adapterDir, baseName), path.resolve(baseName)] : [];
  const found = candidates.find((c) => fs.existsSync(path.join(c, 'config.json')));
  if (!found) {
    throw new CliError(
      `${adapterDir}: the adapter's base model is needed to convert it (an adapter holds only ΔW for some layers of it); ` +
        (baseName ? `it names "${baseName}", which is not a local model folder. ` : 'it does not name one. ') +
        'Give the folder with --model DIR (config.json + model.safetensors)',
    );
  }
  return loadHfFolder(found, modelSizeLimit());
}

export const convertCommand: CliCommand = {
  name: 'convert',
  summary: 'Export an adapter (GGUF for llama.cpp, mlx-lm) or a model (GGUF) for deployment',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      to: { type: 'string' },
      out: { type: 'string' },
      model: { type: 'string' },
      dtype: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `one ADAPTER_DIR or MODEL_DIR expected, got ${positionals.length}` : 'ADAPTER_DIR or MODEL_DIR is required');
    if (values.to !== 'gguf' && values.to !== 'mlx') throw new UsageError(`--to must be gguf or mlx, got ${values.to === undefined ? 'nothing' : `"${values.to}"`}`);
    if (!values.out) throw new UsageError('--out is required');
    if (values.dtype !== undefined && !DTYPES[values.dtype]) throw new UsageError(`--dtype must be f32, f16 or bf16, got "${values.dtype}"`);
    let input = path.resolve(positionals[0]);
    if (fs.existsSync(path.join(input, RUN_INFO_FILE))) {
      // A LoRA Lab run folder: its adapter is in adapter/, once the run has completed.
      const run = loadRun(input);
      if (!run.adapterDir) throw new CliError(`${input} is a LoRA Lab run (status ${run.info.status}) without an adapter yet: adapter/ is written when the run completes`);
      input = run.adapterDir;
    }
    const out = path.resolve(values.out);
    const st = fs.statSync(input, { throwIfNoEntry: false });
    if (!st?.isDirectory()) throw new CliError(`${input}: ${st ? 'is a file' : 'no such folder'}; expected an adapter folder (adapter_config.json) or a model folder (config.json)`);
    const isAdapter = fs.existsSync(path.join(input, 'adapter_config.json'));
    if (!isAdapter && !fs.existsSync(path.join(input, 'config.json'))) throw new CliError(`${input}: neither adapter_config.json (an adapter) nor config.json (a model) is there`);
    if (!isAdapter && values.to === 'mlx') throw new CliError(`${input} is a model folder; --to mlx converts adapters (mlx-lm loads Hugging Face model folders as they are)`);
    if (values.to === 'gguf' && !/\.gguf$/i.test(out)) throw new UsageError(`--out ${values.out}: name the file to write with .gguf at the end`);
    const outStat = fs.statSync(out, { throwIfNoEntry: false });
    // --force must never replace what the conversion reads (adapter_config.json is in both layouts).
    const real = (p: string) => (fs.existsSync(p) ? fs.realpathSync(p) : path.resolve(p));
    if (values.to === 'mlx' && [input, values.model].some((d) => d !== undefined && real(d) === real(out))) throw new CliError(`--out ${out} is a folder the conversion reads; write the mlx-lm adapter to another folder`);
    if (values.to === 'gguf' && outStat?.isDirectory()) throw new CliError(`--out ${out}: is a folder; expected the .gguf file to write`);
    if (values.to === 'mlx' && outStat && !outStat.isDirectory()) throw new CliError(`--out ${out}: is a file; expected the folder for adapters.safetensors + adapter_config.json`);
    const target = values.to === 'gguf' ? out : path.join(out, 'adapters.safetensors');
    if (!values.force && fs.existsSync(target)) throw new CliError(`${target} exists (use --force to overwrite it)`);
    const say = (s: string) => {
      if (!values.json) process.stdout.write(`${s}\n`);
    };
    try {
      if (!isAdapter) {
        const folder = await loadHfFolder(input, modelSizeLimit());
        const type = DTYPES[values.dtype ?? 'f16'];
        const { file, arch, notes } = modelToGguf(folder.config, folder.weights, { type, name: path.basename(input), tokenizerJson: folder.tokenizerJson, source: folder.weightFiles.join(', ') });
        for (const n of notes) process.stderr.write(`note: ${n}\n`);
        fs.mkdirSync(path.dirname(out), { recursive: true });
        const bytes = await writeGgufFile(out, file);
        if (values.json) process.stdout.write(JSON.stringify({ out, kind: 'model', arch, dtype: type, tensors: file.tensors.length, bytes, notes }) + '\n');
        else say(`wrote ${out}: llama.cpp ${arch} model, ${file.tensors.length} tensors (${type}), ${(bytes / 2 ** 20).toFixed(1)} MiB`);
        return;
      }
      // The adapter is applied by the engine (tfjs), exactly as `logits` and `merge` apply it.
      await startBackend({ prefer: 'wasm' });
      const adapterDir = await loadPeftAdapterDir(input);
      const folder = await baseFolder(input, values.model, adapterDir.parsed.config.baseModelNameOrPath ?? undefined);
      const what = values.to === 'gguf' ? 'a llama.cpp GGUF adapter' : 'an mlx-lm adapter';
      if (values.to === 'gguf') llamaCppArch(folder.config, path.join(folder.dir, 'config.json'));
      const { factors, embeddings, notes } = adapterFactors(folder.config, folder.weights, adapterDir.parsed, adapterDir.weights, { target: what, baseSource: folder.weightFiles.join(', '), adapterSource: adapterDir.weightsFile });
      for (const n of notes) process.stderr.write(`note: ${n}\n`);
      const type = DTYPES[values.dtype ?? 'f32'];
      const name = path.basename(path.resolve(positionals[0]));
      if (values.to === 'gguf') {
        const arch = llamaCppArch(folder.config);
        const { file, modules, alpha } = loraToGguf(arch, folder.config, factors, { type, name, embeddings });
        say(formatConversionTable(modules));
        refuseNonFinite(modules);
        fs.mkdirSync(path.dirname(out), { recursive: true });
        const bytes = await writeGgufFile(out, file);
        if (values.json) process.stdout.write(JSON.stringify({ out, kind: 'adapter', to: 'gguf', arch, dtype: type, alpha, bytes, modules, notes }) + '\n');
        else say(`wrote ${out}: llama.cpp LoRA adapter (${arch}, alpha ${alpha}), ${modules.length} module(s), ${type}`);
      } else {
        if (embeddings.length > 0) {
          throw new CliError(`${adapterDir.weightsFile}: LoRA on the embedding table ${embeddings[0].path} is not converted to mlx-lm here; merge the adapter (lora-lab merge) and use the merged model`);
        }
        const mlx = loraToMlx(folder.config.modelType, folder.config.numLayers, factors, { type, base: adapterDir.parsed.config.baseModelNameOrPath ?? undefined, tiedHead: folder.config.tieWordEmbeddings || !folder.weights.get('lm_head.weight') });
        say(formatConversionTable(mlx.modules));
        refuseNonFinite(mlx.modules);
        fs.mkdirSync(out, { recursive: true });
        await writeSafetensors(target, mlx.tensors);
        await writeFileAtomic(path.join(out, 'adapter_config.json'), JSON.stringify(mlx.config, null, 2) + '\n');
        if (values.json) process.stdout.write(JSON.stringify({ out, kind: 'adapter', to: 'mlx', dtype: type, rank: mlx.rank, scale: mlx.scale, modules: mlx.modules, notes }) + '\n');
        else say(`wrote ${out}: mlx-lm adapter (rank ${mlx.rank}, scale ${mlx.scale}), ${mlx.modules.length} module(s), ${type}`);
      }
    } catch (e) {
      if (InteropError.is(e)) throw new CliError(e.message);
      throw e;
    }
  },
};

function refuseNonFinite(modules: ConvertedModule[]) {
  const bad = modules.find((m) => !Number.isFinite(m.relError) || !Number.isFinite(m.norm));
  if (bad) throw new CliError(`${bad.module}: its converted ΔW is not finite (relative error ${bad.relError}); nothing was written`);
}
