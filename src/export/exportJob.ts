// `lora-lab export`: turn a causal-lm experiment into a self-contained transformers Trainer + PEFT job
// folder (train.py, launch.sh, requirements.txt, README.md, experiment.json, the dataset), so the same
// experiment runs on GPUs under accelerate / torchrun and its output folder reads as a LoRA Lab run.
//
// With `initFrom` (a seed or a LoRA Lab run of the same experiment) the folder also gets init/: the
// adapter exactly as LoRA Lab initialises it and the training windows of every update in LoRA Lab's
// order, so both engines train the same curve. The Python lives in templates/hf-job/ (shipped as
// dist/templates/hf-job), not in strings here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExperimentConfig } from '../formats/experimentTypes';
import { serializeSafetensors } from '../formats/safetensors';
import { Rng } from '../engine/rng';
import { bytesTokenizer, datasetDocuments, hfTokenizer, makeWindows, type TextTokenizer } from '../models/textData';
import { PEFT_DEFAULT_TARGETS } from '../formats/memoryEstimate';
import { loadExperimentConfig } from '../runs/trainRun';
import { RunFolder } from '../runs/runStore';
import { RunError } from '../runs/runErrors';
import { loraLabVersion } from '../runs/versions';
import { ExportError } from './exportError';
import { templatesDir } from './templates';

export { templatesDir } from './templates';

export interface ExportOptions {
  /** The experiment file (*.lora.json / *.lora.yaml). */
  configPath: string;
  /** The job folder to create; it must not exist or be empty. */
  outDir: string;
  /** A seed ("0") or a LoRA Lab run folder of the same experiment: start from LoRA Lab's exact init and data order. */
  initFrom?: string;
}

export interface ExportResult {
  dir: string;
  /** Files written, relative to dir. */
  files: string[];
  /** What differs from LoRA Lab's run of the experiment (also in the job's README.md). */
  notes: string[];
  /** Set with initFrom: where the init came from and the seed it used. */
  init?: { source: string; seed: number };
}

/** What train.py reads (experiment.json). */
export interface JobSpec {
  formatVersion: 1;
  exportedBy: string;
  /** The resolved experiment; model.dataset.path points at the job's own copy of the data. */
  experiment: ExperimentConfig;
  /** Absolute model folder at export time (train.py --model overrides it). */
  modelPath: string;
  modelType: string;
  dataset: { file: string };
  /** PEFT LoraConfig arguments. */
  peft: { r: number; lora_alpha: number; lora_dropout: number; target_modules: string[]; bias: 'none' | 'lora_only'; use_rslora: boolean; use_dora: boolean };
  /** adapter_config.json of the adapter the job saves (as LoRA Lab's own runs write it). */
  adapterConfig: Record<string, unknown>;
  /** What LoRA Lab made of the data; train.py refuses init/ when its own windows differ. */
  expected: { totalTokens: number; trainWindows: number; evalWindows: number };
  initFrom: { source: string; adapter: string; dataOrder: string } | null;
  notes: string[];
}

const TEMPLATE_FILES = ['train.py', 'launch.sh', 'ds_zero2.json', 'requirements.txt', 'README.md', 'sky.yaml', 'slurm.sbatch'];

/** Refuses, by name, experiments that transformers + PEFT cannot express. */
export function checkExpressible(config: ExperimentConfig, configPath: string): void {
  if (config.kind === 'low-rank-recovery') {
    throw new ExportError(
      'not-expressible',
      `${configPath}: experiment "${config.name}" is kind "low-rank-recovery", a synthetic matrix problem built into LoRA Lab with no Hugging Face model; ` +
        'transformers + PEFT cannot express it. Only kind "causal-lm" experiments can be exported',
    );
  }
  if (config.kind === 'attention-adaptation') {
    throw new ExportError(
      'not-expressible',
      `${configPath}: experiment "${config.name}" is kind "attention-adaptation", the reference LoRA code's attention with a trainable W_O and a synthetic teacher; ` +
        'PEFT has no equivalent (no model to load, W_O trains fully). Only kind "causal-lm" experiments can be exported',
    );
  }
}

function modelType(modelDir: string): string {
  const file = path.join(modelDir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ExportError('bad-input', `model.modelPath ${modelDir}: ${code === 'ENOENT' ? 'no config.json (expected a Hugging Face model folder)' : `config.json: ${(e as Error).message}`}`, file);
  }
  const t = (raw as { model_type?: unknown }).model_type;
  if (typeof t !== 'string') throw new ExportError('bad-input', `${file}: no "model_type" string`, file);
  return t;
}

/** The seed to use and, for a run folder, checks that it trained this same experiment. */
function resolveInitFrom(initFrom: string, config: ExperimentConfig, configPath: string): { seed: number; source: string } {
  if (/^\d+$/.test(initFrom.trim())) {
    const seed = Number(initFrom.trim());
    if (!Number.isSafeInteger(seed)) throw new ExportError('init-from', `--init-from ${initFrom}: a seed should be a non-negative integer`);
    return { seed, source: `seed ${seed}` };
  }
  let run: RunFolder;
  try {
    run = RunFolder.open(initFrom);
  } catch (e) {
    if (RunError.is(e)) throw new ExportError('init-from', `--init-from ${initFrom}: expected a seed (an integer) or a LoRA Lab run folder; ${e.message}`, initFrom);
    throw e;
  }
  const theirs = run.readConfig();
  const diffs: string[] = [];
  const same = (field: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${field} is ${JSON.stringify(b)} in the run, ${JSON.stringify(a)} in ${configPath}`);
  };
  same('kind', config.kind, theirs.kind);
  same('lora', config.lora, theirs.lora);
  if (config.model.kind === 'causal-lm' && theirs.model.kind === 'causal-lm') {
    same('model.dataset.seqLen', config.model.dataset.seqLen, theirs.model.dataset.seqLen);
    same('model.dataset.evalFraction', config.model.dataset.evalFraction, theirs.model.dataset.evalFraction);
    same('model.dataset.tokenizer', config.model.dataset.tokenizer, theirs.model.dataset.tokenizer);
  }
  same('training.batchSize', config.training.batchSize, theirs.training.batchSize);
  if (diffs.length) throw new ExportError('init-from', `--init-from ${initFrom}: that run is not this experiment: ${diffs.join('; ')}`, initFrom);
  return { seed: theirs.training.seed, source: `run ${run.runInfo.runId} (seed ${theirs.training.seed})` };
}

/** The windows of update u, exactly as the causal-lm session draws them (src/models/causalLmSession.ts nextBatch). */
export function dataOrder(seed: number, steps: number, batchSize: number, trainWindows: number): number[] {
  const out: number[] = [];
  for (let u = 0; u < steps; u++) {
    const rng = Rng.derive(seed, 'data', u);
    for (let i = 0; i < batchSize; i++) out.push(rng.int(trainWindows));
  }
  return out;
}

function fillTemplate(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (m, key: string) => values[key] ?? m);
}

export async function exportJob(opts: ExportOptions): Promise<ExportResult> {
  const loaded = loadExperimentConfig(opts.configPath);
  let config = loaded.config;
  checkExpressible(config, opts.configPath);
  if (config.model.kind !== 'causal-lm') throw new ExportError('not-expressible', `${opts.configPath}: unknown kind "${config.kind}"`);
  const out = path.resolve(opts.outDir);
  if (fs.existsSync(out) && (!fs.statSync(out).isDirectory() || fs.readdirSync(out).length > 0)) {
    throw new ExportError('out-not-empty', `--out ${opts.outDir} already exists and is not an empty folder; choose a new folder (nothing was written)`, out);
  }
  const configDir = path.dirname(path.resolve(opts.configPath));
  const m = config.model;
  const modelDir = path.resolve(configDir, m.modelPath);
  const type = modelType(modelDir);
  const dataFile = path.resolve(configDir, m.dataset.path);
  let text: string;
  try {
    text = fs.readFileSync(dataFile, 'utf8');
  } catch (e) {
    throw new ExportError('bad-input', `model.dataset.path ${dataFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, dataFile);
  }
  const init = opts.initFrom !== undefined ? resolveInitFrom(opts.initFrom, config, opts.configPath) : undefined;
  if (init) config = { ...config, training: { ...config.training, seed: init.seed } };

  // The windows LoRA Lab makes (train.py recomputes them and checks against these numbers).
  let tokenizer: TextTokenizer;
  if (m.dataset.tokenizer === 'bytes') tokenizer = bytesTokenizer();
  else {
    const tj = path.join(modelDir, 'tokenizer.json');
    if (!fs.existsSync(tj)) throw new ExportError('bad-input', `model.dataset.tokenizer is "tokenizer" but ${modelDir} has no tokenizer.json`, tj);
    const tc = path.join(modelDir, 'tokenizer_config.json');
    tokenizer = hfTokenizer(fs.readFileSync(tj, 'utf8'), fs.existsSync(tc) ? fs.readFileSync(tc, 'utf8') : undefined, tj);
  }
  const windows = makeWindows(datasetDocuments(text, dataFile), tokenizer, m.dataset.seqLen, m.dataset.evalFraction, dataFile);

  const L = config.lora;
  const notes: string[] = [];
  const family = type === 'llama' || type === 'gpt2' ? type : undefined;
  const targets = L.targetModules.length > 0 ? L.targetModules : family ? PEFT_DEFAULT_TARGETS[family] : [];
  if (targets.length === 0) throw new ExportError('bad-input', `lora.targetModules is empty and model_type "${type}" has no default here; list the modules to adapt`);
  if (L.scaling === 'none') notes.push(`lora.scaling "none" (the reference LoRA code's unscaled B·A) is exported as lora_alpha = r = ${L.r}, the same scale 1.`);
  if (L.dropout > 0) {
    notes.push(
      `lora.dropout ${L.dropout}: each engine draws its own dropout masks, so the curves agree in distribution, not step by step (set lora.dropout to 0 to compare them exactly).`,
    );
  }
  if (L.init === 'gaussian' && !init) notes.push('lora.init "gaussian": train.py draws A from N(0, 0.02) as LoRA Lab does (PEFT\'s own "gaussian" is N(0, 1/r)).');
  const hasBias = type === 'gpt2';
  const bias: 'none' | 'lora_only' = L.trainBias && hasBias ? 'lora_only' : 'none';
  const dataName = path.basename(dataFile);
  const jobConfig: ExperimentConfig = { ...config, model: { ...m, modelPath: modelDir, dataset: { ...m.dataset, path: `data/${dataName}` } } };
  const peft = {
    r: L.r,
    lora_alpha: L.scaling === 'none' ? L.r : L.alpha,
    lora_dropout: L.dropout,
    target_modules: targets,
    bias,
    use_rslora: L.scaling === 'rslora',
    use_dora: L.useDora === true,
  };
  const adapterConfig: Record<string, unknown> = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: modelDir,
    r: peft.r,
    lora_alpha: peft.lora_alpha,
    lora_dropout: peft.lora_dropout,
    target_modules: [...targets].sort(),
    use_rslora: peft.use_rslora,
    use_dora: peft.use_dora,
    fan_in_fan_out: type === 'gpt2',
    bias,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
    revision: null,
  };

  // Everything is computed before the folder is made: a failure leaves nothing behind.
  let initFiles: { adapter: Uint8Array; adapterConfig: string; order: string } | undefined;
  if (init) {
    const { backendFacts, startBackend } = await import(/* webpackMode: "eager" */ '../runs/backendSetup');
    const { openCausalLmSession } = await import(/* webpackMode: "eager" */ '../runs/openSession');
    // Initial values come from the engine's seeded Rng in JS, so any backend gives them exactly.
    await startBackend({});
    const session = await openCausalLmSession(config, { configDir, backend: backendFacts() });
    try {
      if (session.details.trainWindows !== windows.train.length) {
        throw new ExportError('bad-input', `internal: the session made ${session.details.trainWindows} training windows, the export ${windows.train.length}`);
      }
      const a = session.exportAdapter();
      const entries: Parameters<typeof serializeSafetensors>[0] = {};
      for (const [k, t] of Object.entries(a.tensors)) entries[k] = { dtype: 'F32', shape: t.shape, data: t.data };
      initFiles = {
        adapter: serializeSafetensors(entries, { format: 'pt', source: `LoRA Lab initial adapter, ${init.source}` }),
        adapterConfig: JSON.stringify({ ...a.config, inference_mode: false }, null, 2) + '\n',
        order: JSON.stringify({
          source: init.source,
          seed: init.seed,
          batchSize: config.training.batchSize,
          steps: config.training.steps,
          trainWindows: windows.train.length,
          indices: dataOrder(init.seed, config.training.steps, config.training.batchSize, windows.train.length),
        }) + '\n',
      };
    } finally {
      session.dispose();
    }
  }

  const spec: JobSpec = {
    formatVersion: 1,
    exportedBy: `LoRA Lab ${loraLabVersion()}`,
    experiment: jobConfig,
    modelPath: modelDir,
    modelType: type,
    dataset: { file: `data/${dataName}` },
    peft,
    adapterConfig,
    expected: { totalTokens: windows.totalTokens, trainWindows: windows.train.length, evalWindows: windows.eval.length },
    initFrom: init ? { source: init.source, adapter: 'init/adapter_model.safetensors', dataOrder: 'init/data_order.json' } : null,
    notes,
  };

  const tpl = templatesDir();
  const files: string[] = [];
  const write = (rel: string, data: string | Uint8Array, mode?: number) => {
    const file = path.join(out, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data, mode !== undefined ? { mode } : undefined);
    files.push(rel);
  };
  const t = config.training;
  const values: Record<string, string> = {
    NAME: config.name,
    // Cluster job names: letters, digits and dashes (SkyPilot's task names, Slurm's --job-name).
    TASK_NAME: config.name.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase() || 'lora-lab-job',
    CONFIG: path.basename(opts.configPath),
    MODEL: modelDir,
    MODEL_TYPE: type,
    DATA: `data/${dataName}`,
    STEPS: String(t.steps),
    BATCH: String(t.batchSize),
    SEED: String(t.seed),
    VERSION: loraLabVersion(),
    INIT: init
      ? `This job starts from LoRA Lab's initial adapter and data order for ${init.source} (init/). Trained on both engines, the experiment gives one loss curve.`
      : 'This job initialises the adapter with PEFT (seeded) and draws its own batches: its curve follows LoRA Lab\'s in distribution. Export with `--init-from SEED` to start from exactly LoRA Lab\'s initial adapter and data order.',
    NOTES: notes.length ? notes.map((n) => `- ${n}`).join('\n') : '- Nothing: the job is the same experiment.',
    TOKENIZERS: m.dataset.tokenizer === 'tokenizer' ? 'tokenizers>=0.15' : '# tokenizers: not needed (the dataset is tokenised as UTF-8 bytes)',
  };
  fs.mkdirSync(out, { recursive: true });
  for (const name of TEMPLATE_FILES) {
    const src = fs.readFileSync(path.join(tpl, name), 'utf8');
    write(name, name === 'train.py' ? src : fillTemplate(src, values), /\.(sh|py|sbatch)$/.test(name) ? 0o755 : undefined);
  }
  write('experiment.json', JSON.stringify(spec, null, 2) + '\n');
  write(`data/${dataName}`, fs.readFileSync(dataFile));
  if (initFiles) {
    write('init/adapter_model.safetensors', initFiles.adapter);
    write('init/adapter_config.json', initFiles.adapterConfig);
    write('init/data_order.json', initFiles.order);
  }
  return { dir: out, files, notes, ...(init ? { init: { source: init.source, seed: init.seed } } : {}) };
}
