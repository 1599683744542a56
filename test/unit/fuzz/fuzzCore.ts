// A seeded mutation fuzzer for the readers: the seed corpus (test/fixtures/fuzz/seeds: safetensors
// files, adapter_config.json, Hugging Face config.json, experiment configs in JSON and YAML) is
// mutated (bytes, JSON tokens, the safetensors length prefix and header) and each case is driven
// through the readers in-process. The contract: a result, or a typed error (FormatError,
// InteropError); any other exception is a crasher. Case i of seed s is the same on every machine.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FormatError } from '../../../src/formats/errors';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { headerLengthOf, parseHeader, parseSafetensors, typedView, type SafetensorsFile } from '../../../src/formats/safetensors';
import { inspectAdapter, type InspectFileInput } from '../../../src/formats/adapters/inspect';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import { decodeExperimentBytes, parseExperimentConfig } from '../../../src/formats/experimentConfig';
import { loadInspectInput } from '../../../src/io/hfFolder';
import { mulberry32 as makeRng } from '../../support/rng';

export const SEEDS_DIR = path.resolve(__dirname, '../../fixtures/fuzz/seeds');
export const CRASHERS_DIR = path.resolve(__dirname, '../../fixtures/fuzz/crashers');

export type DriverName = 'safetensors' | 'safetensors-file' | 'adapter-config' | 'hf-config' | 'experiment-json' | 'experiment-yaml';
export const DRIVERS: readonly DriverName[] = ['safetensors', 'safetensors-file', 'adapter-config', 'hf-config', 'experiment-json', 'experiment-yaml'];

/** Which seeds feed a driver (by file name). */
function seedsFor(driver: DriverName): (name: string) => boolean {
  switch (driver) {
    case 'safetensors':
    case 'safetensors-file':
      return (n) => n.endsWith('.safetensors');
    case 'adapter-config':
      return (n) => n.endsWith('.adapter_config.json');
    case 'hf-config':
      return (n) => n.endsWith('.config.json') && !n.endsWith('.adapter_config.json');
    case 'experiment-json':
      return (n) => n.endsWith('.lora.json');
    case 'experiment-yaml':
      return (n) => n.endsWith('.lora.yaml');
  }
}

export interface Corpus {
  seeds: Map<DriverName, { name: string; bytes: Uint8Array }[]>;
  /** A valid adapter's weights, for driving inspectAdapter with mutated configs. */
  adapterWeights: InspectFileInput;
}

export function loadCorpus(): Corpus {
  const files = fs.readdirSync(SEEDS_DIR).filter((n) => !n.endsWith('.md')).sort();
  const seeds = new Map<DriverName, { name: string; bytes: Uint8Array }[]>();
  for (const d of DRIVERS) {
    const list = files.filter(seedsFor(d)).map((name) => ({ name, bytes: new Uint8Array(fs.readFileSync(path.join(SEEDS_DIR, name))) }));
    if (list.length === 0) throw new Error(`no seeds for ${d} in ${SEEDS_DIR}`);
    seeds.set(d, list);
  }
  const w = seeds.get('safetensors')!.find((s) => s.name === 'peft-dora.safetensors')!.bytes;
  const st = parseSafetensors(w, 'peft-dora.safetensors');
  return { seeds, adapterWeights: weightsInput('adapter_model.safetensors', w, st) };
}

// ---- deterministic randomness ----

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x0a, 0x1b, 0xc0, 0xed, 0xef];
const INTERESTING_NUMBERS = ['0', '-1', '1', '2', '7', '8', '255', '65536', '65537', '1e9', '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '9007199254740993', '18446744073709551615', '1e308', '-1e308', '1e-320', '0.5', '-0', '1e400'];
const INTERESTING_STRINGS = ['', '\\u0000', '__proto__', 'constructor', 'toString', 'F16', 'BF16', 'F32', 'F64', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'C64', 'lora_A', 'lora_down.weight', '../outside', '\\u001b[2J', '\\ud800', 'x'.repeat(300), 'low-rank-recovery', 'causal-lm', 'attention-adaptation', 'LORA', 'llama', 'gpt2'];
const INTERESTING_SNIPPETS = ['[', ']', '{', '}', '"', ',', ':', 'null', 'true', '[]', '{}', '"a": 1', '-', '\ufeff', '# x', '- ', '&a ', '*a', '!!binary ', '<<: ', '[[[[[[[[[[[[[[[[', '{"a":{"a":{"a":{"a":'];

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- mutators ----

function byteMutation(rng: Rng, b: Uint8Array, other: Uint8Array): Uint8Array {
  const n = b.length;
  const at = n ? int(rng, n) : 0;
  switch (int(rng, 8)) {
    case 0: {
      const c = b.slice();
      if (n) c[at] ^= 1 << int(rng, 8);
      return c;
    }
    case 1: {
      const c = b.slice();
      if (n) c[at] = pick(rng, INTERESTING_BYTES);
      return c;
    }
    case 2:
      return concat(b.subarray(0, at), Uint8Array.from({ length: 1 + int(rng, 8) }, () => (rng() < 0.5 ? pick(rng, INTERESTING_BYTES) : int(rng, 256))), b.subarray(at));
    case 3:
      return concat(b.subarray(0, at), b.subarray(Math.min(n, at + 1 + int(rng, 32))));
    case 4: {
      const len = 1 + int(rng, 64);
      return concat(b.subarray(0, at), b.subarray(at, at + len), b.subarray(at));
    }
    case 5:
      return b.slice(0, int(rng, n + 1));
    case 6: {
      const o = other.length ? int(rng, other.length) : 0;
      return concat(b.subarray(0, at), other.subarray(o, o + 1 + int(rng, 64)), b.subarray(at));
    }
    default:
      return concat(b.subarray(0, at), enc.encode(pick(rng, INTERESTING_SNIPPETS)), b.subarray(at));
  }
}

/** Mutations that keep text mostly JSON: swap number and string tokens for interesting ones, nest, duplicate. */
function textMutation(rng: Rng, text: string): string {
  const numbers = [...text.matchAll(/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/g)];
  const strings = [...text.matchAll(/"(?:[^"\\]|\\.)*"/g)];
  const splice = (at: number, len: number, s: string) => text.slice(0, at) + s + text.slice(at + len);
  switch (int(rng, 7)) {
    case 0:
      if (numbers.length) {
        const m = pick(rng, numbers);
        return splice(m.index!, m[0].length, pick(rng, INTERESTING_NUMBERS));
      }
      break;
    case 1:
      if (strings.length) {
        const m = pick(rng, strings);
        return splice(m.index!, m[0].length, `"${pick(rng, INTERESTING_STRINGS)}"`);
      }
      break;
    case 2:
      if (strings.length) {
        // A value replaced by another type.
        const m = pick(rng, strings);
        return splice(m.index!, m[0].length, pick(rng, ['null', '[]', '{}', '1', 'true', '[1, 2]', '{"a": 1}', '-1']));
      }
      break;
    case 3: {
      // Deep nesting around a value.
      const depth = pick(rng, [8, 70, 1000, 5000, 20000]);
      const at = numbers.length ? pick(rng, numbers) : undefined;
      // Closed, or left open (JSON.parse fails at the end, after the nesting).
      if (at) return splice(at.index!, at[0].length, '['.repeat(depth) + at[0] + (rng() < 0.7 ? ']'.repeat(depth) : ''));
      break;
    }
    case 4: {
      // A line duplicated (duplicate keys, repeated items).
      const lines = text.split('\n');
      const i = int(rng, lines.length);
      lines.splice(i, 0, lines[i]);
      return lines.join('\n');
    }
    case 5: {
      // An array value grown long.
      const m = strings.length ? pick(rng, strings) : undefined;
      if (m) return splice(m.index!, m[0].length, `[${Array.from({ length: pick(rng, [3, 100, 3000]) }, (_, k) => `"m${k}"`).join(', ')}]`);
      break;
    }
    default:
      return rng() < 0.5 ? `\ufeff${text}` : text.replace(/\n/g, rng() < 0.5 ? '\r\n' : '\n\n');
  }
  return text;
}

/** A safetensors file's header JSON mutated as text, then re-prefixed with its (new) length. */
function headerMutation(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 8) return b;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n > b.length - 8) return b;
  const header = dec.decode(b.subarray(8, 8 + n));
  let mutated = textMutation(rng, header);
  if (rng() < 0.3) mutated = textMutation(rng, mutated);
  const hb = enc.encode(mutated);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(hb.length), true);
  return concat(prefix, hb, b.subarray(8 + n));
}

const NAME_PARTS = ['lora_A', 'lora_B', 'lora_down', 'lora_up', 'lora_magnitude_vector', 'hada_w1_a', 'lokr_w1', 'alpha', 'weight', 'base_model.model.', 'lora_unet_', 'lora_te_', 'transformer.', 'model.layers.0.self_attn.q_proj', 'lm_head', 'embed_tokens', '.'];
const META_VALUES = ['', '['.repeat(12000) + ']'.repeat(12000), '{"conv_dim": "x"}', '{"conv_dim": "1e9"}', '{"algo": "lokr"}', '[1, 2', '1e400', 'NaN', 'sd_v1', 'sd_xl_base_v1-0', '\u001b]0;x\u0007', 'x'.repeat(5000)];

/** A valid header changed in meaning only (tensor names, metadata), so the file still parses and inspect goes deep. */
function semanticMutation(rng: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 8) return b;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n > b.length - 8) return b;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(dec.decode(b.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch {
    return b;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return b;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const out: Record<string, unknown> = {};
  if (rng() < 0.5 && names.length) {
    const victim = pick(rng, names);
    const parts = victim.split('.');
    parts[int(rng, parts.length)] = pick(rng, NAME_PARTS) + (rng() < 0.5 ? '' : pick(rng, NAME_PARTS));
    const renamed = parts.join('.');
    for (const [k, v] of Object.entries(header)) out[k === victim && !(renamed in header) ? renamed : k] = v;
  } else {
    Object.assign(out, header);
    const meta = { ...((header.__metadata__ as Record<string, string> | undefined) ?? {}) };
    meta[pick(rng, ['ss_network_args', 'ss_sd_model_name', 'ss_base_model_version', 'modelspec.architecture', 'format', 'ss_network_dim', 'ss_network_alpha', 'lora_rank'])] = pick(rng, META_VALUES);
    out.__metadata__ = meta;
  }
  let json: string;
  try {
    json = JSON.stringify(out);
  } catch {
    return b; // JSON.stringify recurses: an earlier round nested the header too deep for it
  }
  const hb = enc.encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(hb.length), true);
  return concat(prefix, hb, b.subarray(8 + n));
}

function lengthPrefixMutation(rng: Rng, b: Uint8Array): Uint8Array {
  const c = b.length >= 8 ? b.slice() : concat(b, new Uint8Array(8 - b.length));
  const values = [0n, 1n, 2n, 7n, 8n, BigInt(Math.max(0, b.length - 8)), BigInt(b.length), BigInt(b.length + 1), 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, 100_000_001n];
  new DataView(c.buffer).setBigUint64(0, pick(rng, values), true);
  return c;
}

export interface FuzzCase {
  driver: DriverName;
  seed: string;
  bytes: Uint8Array;
}

/** Case `index` of campaign `seed`: the same bytes on every run. */
export function makeCase(corpus: Corpus, seed: number, index: number): FuzzCase {
  const rng = makeRng((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  const driver = DRIVERS[index % DRIVERS.length];
  const list = corpus.seeds.get(driver)!;
  const s = pick(rng, list);
  const other = pick(rng, list).bytes;
  let b = s.bytes;
  const rounds = 1 + int(rng, 4);
  const binary = driver === 'safetensors' || driver === 'safetensors-file';
  for (let r = 0; r < rounds; r++) {
    const k = rng();
    if (binary && k < 0.35) b = semanticMutation(rng, b);
    else if (binary && k < 0.65) b = headerMutation(rng, b);
    else if (binary && k < 0.72) b = lengthPrefixMutation(rng, b);
    else if (!binary && k < 0.6) b = enc.encode(textMutation(rng, dec.decode(b)));
    else b = byteMutation(rng, b, other);
  }
  return { driver, seed: s.name, bytes: b };
}

// ---- drivers ----

function weightsInput(name: string, bytes: Uint8Array, st: SafetensorsFile): InspectFileInput {
  return {
    name,
    size: bytes.length,
    head: bytes.subarray(0, 256),
    header: st.header,
    values: (n) => (st.has(n) ? st.toFloat32(n) : undefined),
  };
}

/** A typed error of the readers: what bad input may end in. */
export function isTypedError(e: unknown): boolean {
  return FormatError.is(e) || InteropError.is(e);
}

export type Outcome = 'ok' | 'typed-error';

let tmpDir: string | undefined;

/** Runs one case; resolves to its outcome, or rejects with what escaped (a crasher). */
export async function runCase(corpus: Corpus, c: FuzzCase): Promise<Outcome> {
  const typed = async (f: () => unknown | Promise<unknown>): Promise<Outcome> => {
    try {
      await f();
      return 'ok';
    } catch (e) {
      if (isTypedError(e)) return 'typed-error';
      throw e;
    }
  };
  const text = () => dec.decode(c.bytes);
  switch (c.driver) {
    case 'safetensors': {
      // The header alone, as readSafetensorsHeader does, then the whole file, every tensor, and the
      // inspect report (which must never throw: it collects problems).
      const headerOutcome = await typed(() => {
        const n = headerLengthOf(c.bytes.subarray(0, 8), c.bytes.length, 'fuzz.safetensors');
        return parseHeader(c.bytes.subarray(0, Math.min(c.bytes.length, 8 + n)), c.bytes.length, 'fuzz.safetensors');
      });
      let st: SafetensorsFile | undefined;
      const outcome = await typed(() => {
        st = parseSafetensors(c.bytes, 'fuzz.safetensors');
        for (const name of st.names()) {
          const e = st.entry(name);
          st.toFloat32(name);
          typedView(st.raw(name), e.dtype);
        }
      });
      // The header-only reader (listing, inspect --header-only) accepts whatever the whole-file one does.
      if (outcome === 'ok' && headerOutcome !== 'ok') throw new Error('parseSafetensors accepted a file whose header parseHeader refused');
      const input: InspectFileInput = st ? weightsInput('fuzz.safetensors', c.bytes, st) : { name: 'fuzz.safetensors', size: c.bytes.length, head: c.bytes.subarray(0, 256), headerError: 'unreadable' };
      // As `lora-lab inspect --json` prints it.
      JSON.stringify(inspectAdapter({ path: 'fuzz.safetensors', weights: input, configText: dec.decode(corpus.seeds.get('adapter-config')![0].bytes) }));
      return outcome;
    }
    case 'safetensors-file': {
      // Through the file system readers (header-only and whole-file), as `lora-lab inspect` reads.
      tmpDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-fuzz-'));
      const file = path.join(tmpDir, 'adapter_model.safetensors');
      fs.writeFileSync(file, c.bytes);
      const header = await loadInspectInput(file, { readValues: false });
      inspectAdapter(header);
      const full = await loadInspectInput(file, { readValues: true });
      const report = inspectAdapter(full);
      JSON.stringify(report);
      return report.errors.length || full.weights?.headerError ? 'typed-error' : 'ok';
    }
    case 'adapter-config': {
      const outcome = await typed(() => parsePeftConfig(text(), 'adapter_config.json'));
      JSON.stringify(inspectAdapter({ path: 'adapter', weights: corpus.adapterWeights, configText: text(), configName: 'adapter_config.json' }));
      return outcome;
    }
    case 'hf-config':
      return typed(() => parseHfConfig(text(), 'config.json'));
    case 'experiment-json':
    case 'experiment-yaml': {
      // Never throws: every problem is an issue.
      const decoded = decodeExperimentBytes(c.bytes);
      if (decoded.issue) return 'typed-error';
      const r = parseExperimentConfig(decoded.text, c.driver === 'experiment-json' ? 'fuzz.lora.json' : 'fuzz.lora.yaml');
      for (const i of r.issues) {
        if (!Number.isInteger(i.line) || !Number.isInteger(i.column) || i.line < 1 || i.column < 1) throw new Error(`issue without a position: ${JSON.stringify(i)}`);
      }
      return r.config ? 'ok' : 'typed-error';
    }
  }
}

export function cleanupTmp(): void {
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
}

/** A crasher's file name: driver first (the replay picks the driver from it). */
export function crasherName(c: FuzzCase, seed: number, index: number): string {
  return `${c.driver}--${seed}-${index}.bin`;
}

export function driverOfCrasher(file: string): DriverName | undefined {
  const d = path.basename(file).split('--')[0] as DriverName;
  return DRIVERS.includes(d) ? d : undefined;
}
