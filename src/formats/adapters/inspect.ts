// `inspectAdapter`: one pure report about an adapter file or folder, for `lora-lab inspect`, the
// extension's adapter tree and the dashboard. Header-only by default (names, dtypes, shapes, metadata,
// adapter_config.json); when the caller also passes tensor values, alpha scalars are read, every
// tensor is checked for NaN/Inf (the values pass, valuesCheck.ts) and ΔW norms are computed. Never
// executes or unpickles anything; metadata is returned as plain strings for the UI to render as text.
import { describeJsonSyntaxError, nestingTooDeep } from '../jsonText';
import type { SafetensorsHeader } from '../safetensors';
import { normalizePeftKey, parsePeftConfig, type PeftLoraConfig } from '../peftConfig';
import { describeLayout, FORMAT_LABEL, type AdapterFormat, type AdapterModule, type TensorInfo } from './adapterFormats';
import { isPickleName, sniffBytes } from './sniff';
import { deltaNorm } from './deltaW';
import { checkValues, nonFiniteWarning, type ValuesCheck } from './valuesCheck';

export interface InspectFileInput {
  /** Path or name shown to the user. */
  name: string;
  size: number;
  /** The first bytes of the file (256 are enough) to recognise LFS pointers (and read their size) and pickles. */
  head: Uint8Array;
  /** The parsed safetensors header, or why it could not be parsed. */
  header?: SafetensorsHeader;
  headerError?: string;
  /** Float32 values of a tensor, when the caller read the data (enables alpha values, NaN/Inf checks and ΔW norms). */
  values?(name: string): Float32Array | undefined;
  /**
   * The values pass already run by the caller (checkValuesAsync, in steps): alpha values and NaN/Inf come
   * from it instead of a pass over `values`; without `values` no ΔW norms are computed.
   */
  checked?: ValuesCheck;
}

export interface InspectInput {
  /** The file or folder inspected. */
  path: string;
  /** The weights file (adapter_model.safetensors, adapters.safetensors, a .safetensors LoRA). */
  weights?: InspectFileInput;
  /** adapter_config.json text and its name, when present. */
  configText?: string;
  configName?: string;
  /** Other files in the folder (name, size, first bytes): pickles and LFS pointers are reported. */
  siblings?: { name: string; size: number; head: Uint8Array }[];
  /** Subfolders holding an adapter_config.json: PEFT saves every adapter but "default" in one named after it. */
  subAdapters?: { name: string; path: string }[];
}

export interface InspectModule extends AdapterModule {
  shapes: Record<string, number[]>;
}

export interface InspectReport {
  path: string;
  format: AdapterFormat | 'unreadable';
  formatLabel: string;
  /** The base model named by the config or metadata, if any. */
  baseModel?: string;
  /** Where baseModel came from: "adapter_config.json base_model_name_or_path", "ss_sd_model_name", … */
  baseModelSource?: string;
  /** Always present for adapters: they are a correction to a base model, not a model. */
  baseModelStatement: string;
  modules: InspectModule[];
  /**
   * params: what PEFT counts as the adapter's trainable parameters: the LoRA factors plus the saved
   * modules_to_save copies and trained biases (savedParams). Saved base-layer copies (resized
   * vocabularies) are not trained, so not counted.
   */
  totals: { modules: number; params: number; savedParams: number; tensors: number; bytes: number };
  /**
   * The adapters in subfolders of a PEFT multi-adapter folder (name = subfolder), when there are any;
   * `summary` when the caller inspected them too.
   */
  adapters?: { name: string; path: string; summary?: { format: string; modules: number; params: number; ranks: Record<string, number>; errors: string[] } }[];
  /** Tensors per dtype. */
  dtypes: Record<string, number>;
  /** Ranks seen, with the number of modules of each. */
  ranks: Record<string, number>;
  /** safetensors __metadata__ exactly as strings; never interpret as HTML. */
  metadata: Record<string, string>;
  /** JSON-valued metadata (ss_network_args, ss_tag_frequency, …) parsed, when it parses. */
  metadataJson: Record<string, unknown>;
  config?: Record<string, unknown>;
  extras: TensorInfo[];
  warnings: string[];
  /**
   * Problems that stop the adapter from being read or loaded: LFS pointer, pickle, malformed weights file
   * (then no modules), or an adapter_config.json that is not valid (the weights are still described).
   */
  errors: string[];
  /** True when values were scanned (NaN/Inf, alpha values). */
  valuesChecked: boolean;
}

function lfsSize(head: Uint8Array): string | undefined {
  const m = /size (\d+)/.exec(new TextDecoder().decode(head));
  return m?.[1];
}

export function inspectAdapter(input: InspectInput): InspectReport {
  const warnings: string[] = [];
  const errors: string[] = [];
  const report: InspectReport = {
    path: input.path,
    format: 'unreadable',
    formatLabel: 'unreadable',
    baseModelStatement: '',
    modules: [],
    totals: { modules: 0, params: 0, savedParams: 0, tensors: 0, bytes: 0 },
    dtypes: {},
    ranks: {},
    metadata: {},
    metadataJson: {},
    extras: [],
    warnings,
    errors,
    valuesChecked: false,
  };

  if (input.subAdapters?.length) report.adapters = input.subAdapters.map((a) => ({ ...a }));
  for (const s of input.siblings ?? []) {
    const kind = sniffBytes(s.head, s.size);
    const baseName = s.name.replace(/\.LFS_POINTER\.txt$/i, '');
    if (kind === 'lfs-pointer') {
      errors.push(`${s.name} is a Git LFS pointer${lfsSize(s.head) ? ` to a ${lfsSize(s.head)}-byte object` : ''}, not the weights: run "git lfs pull" in its repository`);
    } else if (kind === 'pickle' || isPickleName(baseName)) {
      errors.push(`${s.name} is a PyTorch pickle: refused, never unpickled (it can run arbitrary code). Convert it to safetensors in a trusted environment`);
    }
  }

  // adapter_config.json: PEFT, or another tool's JSON (mlx-lm).
  let peft: PeftLoraConfig | undefined;
  let other: Record<string, unknown> | undefined;
  // A config that is there but unusable: an error (PEFT cannot load the adapter), the weights are still described.
  let configBroken = false;
  if (input.configText !== undefined) {
    const cname = input.configName ?? 'adapter_config.json';
    let raw: unknown;
    const deep = nestingTooDeep(input.configText, false, 64);
    try {
      // The report keeps the config; nested deeper than any real one, it could not be printed
      // (JSON.stringify recurses once per level).
      if (deep !== undefined) throw new SyntaxError('too deep');
      raw = JSON.parse(input.configText);
    } catch {
      configBroken = true;
      errors.push(`${cname}: ${deep !== undefined ? 'nested more than 64 levels deep; not an adapter config' : describeJsonSyntaxError(input.configText)}`);
    }
    if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
      configBroken = true;
      errors.push(`${cname}: expected a JSON object, got ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}`);
    } else if (raw !== undefined) {
      const obj = raw as Record<string, unknown>;
      report.config = obj;
      if ('peft_type' in obj) {
        try {
          const parsed = parsePeftConfig(input.configText, cname);
          peft = parsed.config;
          warnings.push(...parsed.notes.map((n) => `${cname}: ${n}`));
        } catch (e) {
          configBroken = true;
          const msg = (e as Error).message;
          errors.push(msg.startsWith(cname) ? msg : `${cname}: ${msg}`);
        }
      } else {
        other = obj;
        if ('lora_parameters' in obj) warnings.push(`${cname} is an mlx-lm config (no peft_type): PEFT would refuse it`);
        else warnings.push(`${cname} has no "peft_type": not a PEFT config`);
      }
    }
  }

  const w = input.weights;
  if (!w) {
    if (errors.length === 0 && !report.adapters) errors.push('no adapter weights found (expected adapter_model.safetensors or a .safetensors file)');
    finishBase(report, peft, other);
    return report;
  }
  const sniffed = sniffBytes(w.head, w.size);
  if (sniffed === 'lfs-pointer') {
    errors.push(`${w.name} is a Git LFS pointer${lfsSize(w.head) ? ` to a ${lfsSize(w.head)}-byte object` : ''}, not the weights: run "git lfs pull" in its repository`);
  } else if (sniffed === 'pickle' || (isPickleName(w.name) && !w.header)) {
    errors.push(`${w.name} is a PyTorch pickle: refused, never unpickled (it can run arbitrary code). Convert it to safetensors in a trusted environment`);
  } else if (!w.header) {
    const why = (w.headerError ?? 'unreadable header').replace(`${w.name}: `, '').replace(/^not a safetensors file: /, '');
    errors.push(`${w.name}: not a valid safetensors file: ${why}`);
  }
  if (!w.header) {
    finishBase(report, peft, other);
    return report;
  }

  const h = w.header;
  report.metadata = { ...h.metadata };
  for (const [k, v] of Object.entries(h.metadata)) {
    const s = v.trim();
    // Not when nested deeper than any real metadata: `inspect --json` prints the report with
    // JSON.stringify, which recurses once per level.
    if (((s.startsWith('{') && s.endsWith('}')) || (s.startsWith('[') && s.endsWith(']'))) && nestingTooDeep(s, false, 64) === undefined) {
      try {
        report.metadataJson[k] = JSON.parse(s);
      } catch {
        // not JSON after all: keep it as the string it is
      }
    }
  }
  const tensors: TensorInfo[] = h.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const checked = w.checked ?? (w.values ? checkValues(h.tensors, w.values) : undefined);
  const scalar = checked ? (name: string) => checked.scalars.get(name) : undefined;
  const layout = describeLayout({ tensors, metadata: h.metadata, peftConfig: peft, otherConfig: other, scalar });
  report.format = layout.format;
  report.formatLabel = FORMAT_LABEL[layout.format];
  warnings.push(...layout.warnings);
  report.modules = layout.modules.map((m) => ({ ...m, shapes: Object.fromEntries(Object.entries(m.tensors).map(([r, t]) => [r, t.shape])) }));
  report.extras = layout.extras;
  for (const t of h.tensors) {
    report.dtypes[t.dtype] = (report.dtypes[t.dtype] ?? 0) + 1;
    report.totals.bytes += t.end - t.begin;
    if (t.shape.some((d) => d === 0)) warnings.push(`tensor "${t.name}" is empty (shape [${t.shape.join(', ')}])`);
  }
  report.totals.tensors = h.tensors.length;
  report.totals.modules = layout.modules.length;
  report.totals.savedParams = layout.format === 'peft' || layout.format === 'diffusers-peft' ? savedPeftParams(layout.extras, peft) : 0;
  report.totals.params = layout.modules.reduce((s, m) => s + m.paramCount, 0) + report.totals.savedParams;
  for (const m of layout.modules) report.ranks[m.rank] = (report.ranks[m.rank] ?? 0) + 1;
  if (layout.format === 'peft' && !peft && !configBroken) warnings.push('no adapter_config.json next to the weights: PEFT cannot load it, and alpha (hence the scale) is unknown');
  if (peft && layout.format !== 'peft' && layout.format !== 'diffusers-peft') warnings.push(`adapter_config.json is PEFT's but the weights are ${FORMAT_LABEL[layout.format]}`);

  if (checked) {
    report.valuesChecked = true;
    const values = w.values;
    if (values) {
      const get = (n: string) => values(n) ?? new Float32Array(0);
      for (const m of report.modules) {
        try {
          m.deltaNorm = deltaNorm(layout.format, m, get);
        } catch {
          // a malformed module already has a warning; leave its norm unknown
        }
      }
    }
    warnings.push(...checked.nonFinite.map(nonFiniteWarning));
  }
  finishBase(report, peft, other);
  return report;
}

/**
 * Elements of the non-LoRA tensors PEFT trains and saves: biases (bias "all" / "lora_only") and
 * modules_to_save copies. Base-layer copies of embedding tables (saved for resized vocabularies) are not.
 */
function savedPeftParams(extras: TensorInfo[], peft: PeftLoraConfig | undefined): number {
  const toSave = peft?.modulesToSave ?? [];
  let n = 0;
  for (const t of extras) {
    const name = normalizePeftKey(t.name);
    const path = name.slice(0, name.lastIndexOf('.'));
    const saved = toSave.some((m) => path === m || path.endsWith(`.${m}`) || path.includes(`.${m}.`) || path.startsWith(`${m}.`));
    if (saved || name.endsWith('.bias')) n += t.shape.reduce((a, b) => a * b, 1);
  }
  return n;
}

function finishBase(report: InspectReport, peft: PeftLoraConfig | undefined, other: Record<string, unknown> | undefined): void {
  const meta = report.metadata;
  const pick = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
  const candidates: [string | undefined, string][] = [
    [pick(peft?.baseModelNameOrPath), 'adapter_config.json base_model_name_or_path'],
    [pick(other?.model), 'adapter_config.json "model" (mlx-lm; a path on the machine that trained it)'],
    [pick(meta['modelspec.architecture']), 'modelspec.architecture'],
    [pick(meta.ss_sd_model_name), 'ss_sd_model_name'],
    [pick(meta.ss_base_model_version), 'ss_base_model_version'],
  ];
  const hit = candidates.find(([v]) => v !== undefined);
  if (hit) {
    report.baseModel = hit[0];
    report.baseModelSource = hit[1];
  }
  if (report.adapters && report.format === 'unreadable' && report.errors.length === 0) {
    report.baseModelStatement = `A PEFT multi-adapter folder: ${report.adapters.length} adapter(s) in subfolders (${report.adapters.map((a) => a.name).join(', ')}); inspect each one.`;
  } else if (report.format === 'not-an-adapter') {
    report.baseModelStatement = 'This file holds no LoRA factors; it is not an adapter.';
  } else if (report.format === 'unreadable') {
    report.baseModelStatement = report.baseModel
      ? `An adapter for ${report.baseModel} (${report.baseModelSource}); its weights could not be read. An adapter cannot run without its base model.`
      : 'The adapter weights could not be read. An adapter cannot run without its base model.';
  } else {
    report.baseModelStatement = report.baseModel
      ? `Needs the base model ${report.baseModel} (from ${report.baseModelSource}): an adapter only stores changes to ${report.totals.modules} module(s) of it and cannot run without it.`
      : 'The base model is not named in the file: an adapter only stores changes to the modules of a base model and cannot run without it.';
  }
  if (meta.ss_base_model_version && meta.ss_base_model_version.startsWith('sd_') && report.modules.some((m) => /transformer_blocks|single_transformer_blocks/.test(m.name) && !m.name.includes('attentions'))) {
    report.warnings.push(`metadata says ss_base_model_version "${meta.ss_base_model_version}" but the module names are a transformer (e.g. FLUX) layout; the metadata may be wrong`);
  }
}
