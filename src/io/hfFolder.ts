// Reads a local Hugging Face model folder from disk: config.json, model.safetensors or the shards named
// by model.safetensors.index.json, and tokenizer.json when present. The pure parts (config parsing,
// safetensors decoding, model building) live in src/formats and src/models; this file only does I/O.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parseHfConfig, type HfModelConfig } from '../formats/hfConfig';
import { parsePeftConfig, type ParsedPeftConfig } from '../formats/peftConfig';
import { parseSafetensors, type SafetensorsFile, type SafetensorsHeader, type TensorToWrite } from '../formats/safetensors';
import { encodeBf16, encodeF16 } from '../formats/dtype';
import { writeFileAtomic } from './atomic';
import { readSafetensorsHeader, readWholeFile, writeSafetensors } from './safetensorsFile';
import { NotRegularFileError, OutsideFolderError, confinedPath, openRegular, readRegularText } from './regularFile';
import { describeJsonSyntaxError } from '../formats/jsonText';
import { FormatError } from '../formats/errors';
import { InteropError } from '../formats/adapters/interopError';
import { isPickleName, sniffBytes } from '../formats/adapters/sniff';
import type { InspectFileInput, InspectInput } from '../formats/adapters/inspect';
import type { CausalLmInputs, HostTensor, WeightSource } from '../formats/weightSource';

export interface HfFolder {
  dir: string;
  config: HfModelConfig;
  configText: string;
  weights: WeightSource;
  /** The weight files read (one, or the shards). */
  weightFiles: string[];
  /** tokenizer.json text, when the folder has one. */
  tokenizerJson?: string;
  /** Other small files worth copying next to a merged model (generation_config.json, tokenizer files). */
  extraFiles: string[];
  /** Elements of every weight tensor (from the headers), and their size as float32 in bytes. */
  paramCount: number;
  float32Bytes: number;
}

export interface LoadHfFolderOptions {
  /**
   * Refuse, before reading any weights, a model whose weights take more than this many bytes as
   * float32 (the engine holds them as float32), saying why: `limitReason`.
   */
  maxFloat32Bytes?: number;
  limitReason?: string;
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** `dir` must be an existing folder; `what` names what it should hold (said in the error). */
async function requireFolder(dir: string, what: string): Promise<void> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st) throw new InteropError('bad-input', `${dir}: no such folder; expected ${what}`, dir);
  if (!st.isDirectory()) throw new InteropError('bad-input', `${dir}: is a file; expected the folder that holds ${what}`, dir);
}

/** An unreadable weights file as an InteropError naming it (a missing shard says which index lists it). */
function unreadable(file: string, e: unknown, listedIn?: string): InteropError {
  if (NotRegularFileError.is(e) || OutsideFolderError.is(e)) return new InteropError('bad-input', e.message, file);
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? `no such file${listedIn ? ` (listed in ${path.basename(listedIn)})` : ''}` : `cannot read it (${code ?? (e as Error).message})`;
  return new InteropError('missing-tensor', `${file}: ${why}`, file);
}

function lfsPointer(file: string): InteropError {
  return new InteropError('lfs-pointer', `${file}: this is a Git LFS pointer, not the weights; run "git lfs pull" in its repository`, file);
}

/** A weights file's header, turning a Git LFS pointer (a small text file) into that clear error. */
async function readWeightsHeader(file: string, listedIn?: string): Promise<SafetensorsHeader> {
  try {
    return await readSafetensorsHeader(file);
  } catch (e) {
    if (!FormatError.is(e)) throw unreadable(file, e, listedIn);
    // Only the first bytes: enough to tell an LFS pointer's text from a damaged safetensors file.
    const handle = await openRegular(file);
    try {
      const head = new Uint8Array(64);
      const { bytesRead } = await handle.read(head, 0, 64, 0);
      if (sniffBytes(head.subarray(0, bytesRead), (await handle.stat()).size) === 'lfs-pointer') throw lfsPointer(file);
    } finally {
      await handle.close();
    }
    throw e;
  }
}

/** Read and parse one safetensors file, turning LFS pointers and non-safetensors bytes into clear errors. */
export async function readWeightsFile(file: string, listedIn?: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readWholeFile(file);
  } catch (e) {
    if (FormatError.is(e)) throw e;
    throw unreadable(file, e, listedIn);
  }
  if (sniffBytes(bytes.subarray(0, 64), bytes.length) === 'lfs-pointer') throw lfsPointer(file);
  return parseSafetensors(bytes, file);
}

export function weightsFromFiles(files: { file: string; st: SafetensorsFile }[]): WeightSource {
  const where = new Map<string, SafetensorsFile>();
  for (const { st } of files) for (const n of st.names()) where.set(n, st);
  const cache = new Map<string, HostTensor>();
  return {
    names: () => [...where.keys()],
    get(name) {
      const st = where.get(name);
      if (!st) return undefined;
      let t = cache.get(name);
      if (!t) {
        t = { shape: st.entry(name).shape, data: st.toFloat32(name) };
        cache.set(name, t);
      }
      return t;
    },
    dtype: (name) => where.get(name)?.entry(name).dtype,
    stored(name) {
      const st = where.get(name);
      return st ? { shape: st.entry(name).shape, dtype: st.entry(name).dtype, bytes: st.raw(name) } : undefined;
    },
  };
}

/**
 * The text of file `name` of model folder `dir`: inside the folder (links out of it refused), a
 * regular file (FIFOs and devices refused unopened). Errors name the file, never quote its content.
 */
async function readModelText(dir: string, name: string): Promise<string> {
  const reason = 'bad-config';
  let file = path.join(dir, name);
  try {
    file = await confinedPath(dir, name);
    return await readRegularText(file);
  } catch (e) {
    if (NotRegularFileError.is(e) || OutsideFolderError.is(e)) throw new InteropError(reason, e.message, file);
    throw new InteropError(reason, `${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  }
}

export async function loadHfFolder(dir: string, opts: LoadHfFolderOptions = {}): Promise<HfFolder> {
  await requireFolder(dir, 'a Hugging Face model (config.json + model.safetensors)');
  const configPath = path.join(dir, 'config.json');
  if (!(await exists(configPath))) {
    throw new InteropError('bad-config', `${dir}: no config.json; a model folder needs config.json and model.safetensors`, dir);
  }
  const configText = await readModelText(dir, 'config.json');
  const config = parseHfConfig(configText, configPath);
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  let weightFiles: string[];
  if (await exists(single)) {
    weightFiles = [single];
  } else if (await exists(index)) {
    const indexText = await readModelText(dir, 'model.safetensors.index.json');
    let map: unknown;
    try {
      map = (JSON.parse(indexText) as { weight_map?: unknown } | null)?.weight_map;
    } catch {
      throw new InteropError('bad-config', `${index}: ${describeJsonSyntaxError(indexText)}`, index);
    }
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new InteropError('bad-config', `${index}: no "weight_map" object`, index);
    const names = [...new Set(Object.values(map as Record<string, unknown>))];
    weightFiles = [];
    for (const f of names) {
      if (typeof f !== 'string') throw new InteropError('bad-config', `${index}: every "weight_map" value must be a file name (a string), got ${f === null ? 'null' : typeof f}`, index);
      try {
        weightFiles.push(await confinedPath(dir, f, index));
      } catch (e) {
        throw new InteropError('bad-config', (e as Error).message, index);
      }
    }
  } else if (await exists(path.join(dir, 'pytorch_model.bin'))) {
    throw new InteropError('pickle-refused', `${dir}: only pytorch_model.bin (a pickle) is present; LoRA Lab never unpickles. Convert it to model.safetensors first`, dir);
  } else {
    throw new InteropError('missing-tensor', `${dir}: no model.safetensors or model.safetensors.index.json`, dir);
  }
  const listedIn = weightFiles.length === 1 && weightFiles[0] === single ? undefined : index;
  if (!listedIn) {
    try {
      await confinedPath(dir, 'model.safetensors');
    } catch (e) {
      throw unreadable(single, e);
    }
  }
  // Sizes from the headers first: a model too large for the backend is refused before gigabytes are read.
  let paramCount = 0;
  for (const file of weightFiles) {
    const header = await readWeightsHeader(file, listedIn);
    for (const t of header.tensors) paramCount += t.shape.reduce((a, b) => a * b, 1);
  }
  const float32Bytes = paramCount * 4;
  if (opts.maxFloat32Bytes !== undefined && float32Bytes > opts.maxFloat32Bytes) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new InteropError(
      'too-large',
      `${dir}: the model has ${paramCount >= 1e9 ? `${(paramCount / 1e9).toFixed(2)} B` : `${(paramCount / 1e6).toFixed(1)} M`} parameters, ${gib(float32Bytes)} as float32, over the ${gib(opts.maxFloat32Bytes)} this backend can hold${opts.limitReason ? ` (${opts.limitReason})` : ''}`,
      dir,
    );
  }
  const files = await Promise.all(weightFiles.map(async (file) => ({ file, st: await readWeightsFile(file, listedIn) })));
  const tokPath = path.join(dir, 'tokenizer.json');
  const tokenizerJson = (await exists(tokPath)) ? await readModelText(dir, 'tokenizer.json') : undefined;
  const extras = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];
  const extraFiles: string[] = [];
  for (const e of extras) {
    if (!(await exists(path.join(dir, e)))) continue;
    // Copied next to a merged model: only regular files of this folder (not a link to another file
    // of the machine, nor a FIFO the copy would wait on).
    try {
      const file = await confinedPath(dir, e);
      const st = await fs.stat(file);
      if (!st.isFile()) throw new NotRegularFileError(file, st.isFIFO() ? 'a FIFO (named pipe)' : st.isDirectory() ? 'a folder' : 'not a regular file');
    } catch (err) {
      throw new InteropError('bad-input', (err as Error).message, path.join(dir, e));
    }
    extraFiles.push(e);
  }
  return { dir, config, configText, weights: weightsFromFiles(files), weightFiles, tokenizerJson, extraFiles, paramCount, float32Bytes };
}

/** Writes `<out>/config.json` + `<out>/model.safetensors` (+ generation/tokenizer files) for a merged model. */
export async function writeMergedFolder(
  base: HfFolder,
  replaced: Map<string, HostTensor> | Record<string, HostTensor>,
  out: string,
): Promise<{ files: string[]; tensors: number }> {
  const rep = replaced instanceof Map ? replaced : new Map(Object.entries(replaced));
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of base.weights.names()) {
    const t = rep.get(name) ?? base.weights.get(name)!;
    tensors[name] = encodeAs(base.weights.dtype?.(name) ?? 'F32', t);
  }
  for (const [name, t] of rep) if (!(name in tensors)) tensors[name] = encodeAs('F32', t);
  await fs.mkdir(out, { recursive: true });
  await writeSafetensors(path.join(out, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(path.join(out, 'config.json'), base.configText);
  const files = ['config.json', 'model.safetensors'];
  for (const e of base.extraFiles) {
    await fs.copyFile(path.join(base.dir, e), path.join(out, e));
    files.push(e);
  }
  return { files, tensors: Object.keys(tensors).length };
}

function encodeAs(dtype: string, t: HostTensor): TensorToWrite {
  switch (dtype) {
    case 'F16':
      return { dtype: 'F16', shape: t.shape, data: encodeF16(t.data) };
    case 'BF16':
      return { dtype: 'BF16', shape: t.shape, data: encodeBf16(t.data) };
    case 'F64':
      return { dtype: 'F64', shape: t.shape, data: Float64Array.from(t.data) };
    default:
      // Model weights are floats; anything else was widened to F32 on read and is written back as F32.
      return { dtype: 'F32', shape: t.shape, data: t.data };
  }
}

/** Everything a causal-lm experiment reads from disk; paths resolve against the config file's folder. */
export async function loadCausalLmInputs(modelPath: string, datasetPath: string, configDir: string, opts: LoadHfFolderOptions = {}): Promise<CausalLmInputs> {
  const modelDir = path.resolve(configDir, modelPath);
  const dataFile = path.resolve(configDir, datasetPath);
  const folder = await loadHfFolder(modelDir, opts);
  let datasetText: string;
  try {
    datasetText = await readRegularText(dataFile);
  } catch (e) {
    if (NotRegularFileError.is(e) && e.kind !== 'a folder') throw new InteropError('bad-input', `model.dataset.path ${e.message}`, dataFile);
    const code = NotRegularFileError.is(e) ? 'EISDIR' : (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, expected a .txt or .jsonl file' : (code ?? (e as Error).message);
    throw new InteropError('bad-input', `model.dataset.path ${dataFile}: ${why}`, dataFile);
  }
  const tc = path.join(modelDir, 'tokenizer_config.json');
  const tokenizerConfigJson = (await exists(tc)) ? await readModelText(modelDir, 'tokenizer_config.json') : undefined;
  return { folder, modelPath: modelDir, datasetPath: dataFile, datasetText, tokenizerConfigJson };
}

// ---- adapter files for `inspectAdapter` (src/formats/adapters/inspect.ts) ----

const WEIGHT_NAMES = ['adapter_model.safetensors', 'adapters.safetensors', 'pytorch_lora_weights.safetensors'];
const PICKLE_NAMES = ['adapter_model.bin', 'pytorch_lora_weights.bin', 'adapters.npz'];

async function headOf(file: string, n = 256): Promise<{ head: Uint8Array; size: number }> {
  const h = await openRegular(file);
  try {
    const { size } = await h.stat();
    const head = new Uint8Array(Math.min(n, size));
    if (head.length) await h.read(head, 0, head.length, 0);
    return { head, size };
  } finally {
    await h.close();
  }
}

async function weightInput(file: string, readValues: boolean): Promise<InspectFileInput> {
  const { head, size } = await headOf(file);
  const input: InspectFileInput = { name: file, size, head };
  if (sniffBytes(head, size) === 'lfs-pointer' || sniffBytes(head, size) === 'pickle') return input;
  try {
    if (readValues) {
      const st = await readWeightsFile(file);
      input.header = st.header;
      const cache = new Map<string, Float32Array>();
      input.values = (name) => {
        if (!st.has(name)) return undefined;
        let v = cache.get(name);
        if (!v) cache.set(name, (v = st.toFloat32(name)));
        return v;
      };
    } else {
      input.header = await readSafetensorsHeader(file);
    }
  } catch (e) {
    input.headerError = (e as Error).message;
  }
  return input;
}

/**
 * Gathers what `inspectAdapter` needs for a file or folder. Header-only unless `readValues` (then alpha
 * scalars are read and NaN/Inf checked). Pickles are only sniffed (first bytes), never loaded.
 */
export async function loadInspectInput(p: string, opts: { readValues?: boolean } = {}): Promise<InspectInput> {
  const st = await fs.stat(p);
  const readValues = opts.readValues ?? false;
  if (st.isDirectory()) {
    const entries = (await fs.readdir(p, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
    const weightName = WEIGHT_NAMES.find((n) => entries.includes(n)) ?? entries.find((n) => n.endsWith('.safetensors'));
    const configName = entries.includes('adapter_config.json') ? 'adapter_config.json' : undefined;
    const siblings: InspectInput['siblings'] = [];
    for (const n of entries) {
      if (n === weightName || n === configName) continue;
      if (!/\.(bin|pt|pth|ckpt|pkl|npz|safetensors|txt)$/i.test(n) && !PICKLE_NAMES.includes(n)) continue;
      const { head, size } = await headOf(path.join(p, n));
      const k = sniffBytes(head, size);
      if (k === 'lfs-pointer' || k === 'pickle' || isPickleName(n)) siblings.push({ name: n, size, head });
    }
    const subAdapters: NonNullable<InspectInput['subAdapters']> = [];
    for (const e of (await fs.readdir(p, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
      if (await exists(path.join(p, e, 'adapter_config.json'))) subAdapters.push({ name: e, path: path.join(p, e) });
    }
    return {
      path: p,
      subAdapters,
      weights: weightName ? await weightInput(path.join(p, weightName), readValues) : undefined,
      configText: configName ? await readRegularText(path.join(p, configName)) : undefined,
      configName,
      siblings,
    };
  }
  if (p.toLowerCase().endsWith('adapter_config.json')) return loadInspectInput(path.dirname(p), opts);
  const dir = path.dirname(p);
  const base = path.basename(p);
  // A config next to the file belongs to it only for the conventional adapter file names.
  const cfg = path.join(dir, 'adapter_config.json');
  const useCfg = WEIGHT_NAMES.includes(base) && (await exists(cfg));
  if (isPickleName(base)) {
    const { head, size } = await headOf(p);
    return { path: p, siblings: [{ name: p, size, head }], configText: useCfg ? await readRegularText(cfg) : undefined };
  }
  return {
    path: p,
    weights: await weightInput(p, readValues),
    configText: useCfg ? await readRegularText(cfg) : undefined,
    configName: useCfg ? 'adapter_config.json' : undefined,
  };
}

export interface PeftAdapterDir {
  dir: string;
  parsed: ParsedPeftConfig;
  weights: WeightSource;
  weightsFile: string;
}

/** A PEFT adapter folder: adapter_config.json + adapter_model.safetensors (pickles refused, LFS pointers named). */
export async function loadPeftAdapterDir(dir: string): Promise<PeftAdapterDir> {
  await requireFolder(dir, 'a PEFT adapter (adapter_config.json + adapter_model.safetensors)');
  const cfgPath = path.join(dir, 'adapter_config.json');
  if (!(await exists(cfgPath))) throw new InteropError('bad-config', `${dir}: no adapter_config.json; a PEFT adapter folder needs adapter_config.json and adapter_model.safetensors`, dir);
  const parsed = parsePeftConfig(await readModelText(dir, 'adapter_config.json'), cfgPath);
  const weightsFile = path.join(dir, 'adapter_model.safetensors');
  if (!(await exists(weightsFile))) {
    const bin = path.join(dir, 'adapter_model.bin');
    if (await exists(bin)) {
      const { head, size } = await headOf(bin);
      if (sniffBytes(head, size) === 'lfs-pointer') throw new InteropError('lfs-pointer', `${bin} is a Git LFS pointer, not the weights: run "git lfs pull"`, bin);
      throw new InteropError('pickle-refused', `${bin} is a PyTorch pickle: refused, never unpickled. Convert it to adapter_model.safetensors in a trusted environment`, bin);
    }
    throw new InteropError('missing-tensor', `${dir}: no adapter_model.safetensors`, dir);
  }
  const st = await readWeightsFile(weightsFile);
  return { dir, parsed, weights: weightsFromFiles([{ file: weightsFile, st }]), weightsFile };
}
