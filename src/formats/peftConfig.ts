// PEFT's adapter_config.json for LoRA (and DoRA), with PEFT's own semantics (peft/tuners/lora/config.py
// and tuners_utils.check_target_module_exists). Pure: text in, typed config + notes out.
import { describeJsonSyntaxError, showValue } from './jsonText';
import { InteropError } from './adapters/interopError';
import { peftScale } from '../shared/loraScale';

export type PeftBias = 'none' | 'all' | 'lora_only';

export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  /** A list (exact name or ".suffix" match), a regex string (full match), 'all-linear', or null (model default). */
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  useRslora: boolean;
  fanInFanOut: boolean;
  useDora: boolean;
  bias: PeftBias;
  modulesToSave: string[] | null;
  layersToTransform: number[] | number | null;
  layersPattern: string[] | string | null;
  loraDropout: number;
  initLoraWeights: unknown;
  baseModelNameOrPath: string | null;
  taskType: string | null;
  /** The JSON as read, so writing it back keeps fields we do not interpret. */
  raw: Record<string, unknown>;
}

export interface ParsedPeftConfig {
  config: PeftLoraConfig;
  /** Things ignored or defaulted, worth telling the user (unknown fields, unsupported options). */
  notes: string[];
}

// Every field PEFT's LoraConfig (0.6 ... 0.17) writes that has no effect on reading the weights
// as LoRA here. They are accepted silently when they hold their default.
const INERT = new Set([
  'auto_mapping', 'inference_mode', 'revision', 'megatron_config', 'megatron_core', 'loftq_config', 'peft_version',
  'layer_replication', 'corda_config', 'eva_config', 'qalora_group_size', 'use_qalora', 'target_parameters',
  'trainable_token_indices', 'lora_bias', 'alora_invocation_tokens', 'arrow_config', 'ensure_weight_tying',
  'lora_ga_config', 'monteclora_config', 'use_bdlora', 'velora_config', 'runtime_config', 'init_lora_weights',
]);
const INTERPRETED = new Set([
  'peft_type', 'task_type', 'base_model_name_or_path', 'r', 'lora_alpha', 'lora_dropout', 'target_modules',
  'exclude_modules', 'rank_pattern', 'alpha_pattern', 'use_rslora', 'fan_in_fan_out', 'use_dora', 'bias',
  'modules_to_save', 'layers_to_transform', 'layers_pattern',
]);
/** Inert fields whose non-default value changes the model in a way we do not implement. */
const UNSUPPORTED_WHEN_SET: Record<string, (v: unknown) => boolean> = {
  layer_replication: (v) => v !== null && v !== undefined,
  lora_bias: (v) => v === true,
  target_parameters: (v) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v !== null && v !== undefined,
  use_qalora: (v) => v === true,
  use_bdlora: (v) => v !== null && v !== undefined && v !== false,
  alora_invocation_tokens: (v) => v !== null && v !== undefined,
};

function bad(source: string, msg: string): never {
  throw new InteropError('bad-config', `${source}: ${msg}`, source);
}

function strList(v: unknown, key: string, source: string): string[] | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...new Set(v as string[])];
  bad(source, `"${key}" should be a list of module names or a regex string, got ${showValue(v)}`);
}

/** PEFT compiles these with Python's `re`; one JavaScript cannot compile would silently match nothing. */
function checkRegex(pattern: string, where: string, source: string): void {
  try {
    new RegExp(pattern);
  } catch (e) {
    bad(source, `${where} ${showValue(pattern)} is not a regular expression this reader understands (${(e as Error).message})`);
  }
}

function numMap(v: unknown, key: string, source: string, integer = false): Record<string, number> {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) bad(source, `"${key}" should be an object of pattern -> number, got ${showValue(v)}`);
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (typeof n !== 'number' || !(n > 0) || (integer && !Number.isInteger(n))) {
      bad(source, `"${key}.${k}" should be a positive ${integer ? 'integer' : 'number'}, got ${showValue(n)}`);
    }
    checkRegex(k, `"${key}" key`, source);
  }
  return v as Record<string, number>;
}

function flag(raw: Record<string, unknown>, key: string, source: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') bad(source, `"${key}" should be true or false, got ${showValue(v)}`);
  return v;
}

export function parsePeftConfig(text: string, source = 'adapter_config.json'): ParsedPeftConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    bad(source, describeJsonSyntaxError(text));
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(source, 'expected a JSON object');
  return peftConfigFromJson(raw as Record<string, unknown>, source);
}

export function peftConfigFromJson(raw: Record<string, unknown>, source = 'adapter_config.json'): ParsedPeftConfig {
  const notes: string[] = [];
  const type = raw.peft_type;
  if (type === undefined) bad(source, 'no "peft_type": this is not a PEFT adapter config (PEFT refuses it too)');
  if (type !== 'LORA') {
    throw new InteropError('unknown-format', `${source}: peft_type "${String(type)}" is not supported; only "LORA" (with or without DoRA) is`, source);
  }
  const r = raw.r ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad(source, `"r" should be a positive integer, got ${showValue(raw.r)}`);
  const loraAlpha = raw.lora_alpha ?? 8;
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha)) bad(source, `"lora_alpha" should be a number, got ${showValue(raw.lora_alpha)}`);
  const bias = raw.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') bad(source, `"bias" should be "none", "all" or "lora_only", got ${showValue(bias)}`);
  const lt = raw.layers_to_transform;
  let layersToTransform: number[] | number | null = null;
  if (typeof lt === 'number' && Number.isInteger(lt)) layersToTransform = lt;
  else if (Array.isArray(lt) && lt.every((x) => Number.isInteger(x))) layersToTransform = lt as number[];
  else if (lt !== null && lt !== undefined) bad(source, `"layers_to_transform" should be an integer or a list of integers, got ${showValue(lt)}`);
  const lp = raw.layers_pattern;
  const layersPattern = lp === null || lp === undefined ? null : typeof lp === 'string' || Array.isArray(lp) ? (lp as string | string[]) : bad(source, `"layers_pattern" should be a string or list`);
  const mts = strList(raw.modules_to_save, 'modules_to_save', source);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1) bad(source, `"lora_dropout" should be in [0, 1), got ${showValue(raw.lora_dropout)}`);

  for (const key of Object.keys(raw)) {
    if (INTERPRETED.has(key)) continue;
    // Own keys only: a config key such as "__proto__" or "toString" must not find Object.prototype's.
    const unsupported = Object.hasOwn(UNSUPPORTED_WHEN_SET, key) ? UNSUPPORTED_WHEN_SET[key] : undefined;
    if (unsupported?.(raw[key])) notes.push(`"${key}": ${showValue(raw[key])} is not supported here and was ignored; results may differ from PEFT`);
    else if (!INERT.has(key)) notes.push(`unknown field "${key}" ignored (as PEFT does)`);
  }
  if (raw.use_dora === true && raw.fan_in_fan_out === true) notes.push('DoRA with fan_in_fan_out: the magnitude is taken per output feature of the transposed weight');

  const targetModules = strList(raw.target_modules, 'target_modules', source);
  const excludeModules = strList(raw.exclude_modules, 'exclude_modules', source);
  // 'all-linear' is PEFT's keyword, not a pattern; any other string is a regex matched against module paths.
  if (typeof targetModules === 'string' && targetModules !== 'all-linear') checkRegex(targetModules, '"target_modules"', source);
  if (typeof excludeModules === 'string') checkRegex(excludeModules, '"exclude_modules"', source);
  for (const p of typeof layersPattern === 'string' ? [layersPattern] : (layersPattern ?? [])) checkRegex(p, '"layers_pattern"', source);

  return {
    config: {
      r,
      loraAlpha,
      targetModules,
      excludeModules,
      rankPattern: numMap(raw.rank_pattern, 'rank_pattern', source, true),
      alphaPattern: numMap(raw.alpha_pattern, 'alpha_pattern', source),
      useRslora: flag(raw, 'use_rslora', source),
      fanInFanOut: flag(raw, 'fan_in_fan_out', source),
      useDora: flag(raw, 'use_dora', source),
      bias,
      modulesToSave: mts === null ? null : typeof mts === 'string' ? [mts] : mts,
      layersToTransform,
      layersPattern,
      loraDropout: dropout,
      initLoraWeights: raw.init_lora_weights ?? true,
      baseModelNameOrPath: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null,
      taskType: typeof raw.task_type === 'string' ? raw.task_type : null,
      raw,
    },
    notes,
  };
}

function fullMatch(pattern: string, s: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})$`).test(s);
  } catch {
    return false;
  }
}

/** The layer index in a module path like "model.layers.3.mlp.up_proj" (PEFT's `.*\.[^.]*\.(\d+)\.`). */
function layerIndexOf(path: string, layersPattern: string[] | string | null): number | undefined {
  const patterns = layersPattern === null ? [] : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  if (patterns.length === 0) {
    const m = /^.*\.[^.]*\.(\d+)\./.exec(path);
    return m ? Number(m[1]) : undefined;
  }
  for (const p of patterns) {
    const m = new RegExp(`^.*\\.${p}\\.(\\d+)\\.`).exec(path);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function nameMatches(spec: string[] | string, path: string): boolean {
  if (typeof spec === 'string') return fullMatch(spec, path);
  return spec.some((t) => path === t || path.endsWith(`.${t}`));
}

/**
 * Which of `linearPaths` PEFT would wrap with LoRA. `outputLayer` (e.g. "lm_head") is excluded by
 * 'all-linear', as PEFT does.
 */
export function matchTargetModules(config: PeftLoraConfig, linearPaths: string[], outputLayer = 'lm_head'): string[] {
  let spec = config.targetModules;
  if (spec === null) throw new InteropError('bad-config', 'adapter_config.json: "target_modules" is not set and this model has no PEFT default');
  if (spec === 'all-linear') {
    spec = [...new Set(linearPaths.filter((p) => p !== outputLayer).map((p) => p.split('.').pop()!))];
  }
  const s = spec;
  return linearPaths.filter((path) => {
    if (!nameMatches(s, path)) return false;
    if (config.excludeModules !== null && nameMatches(config.excludeModules, path)) return false;
    // layers_to_transform only narrows list-style targets (PEFT ignores it for a regex string).
    if (typeof s !== 'string' && config.layersToTransform !== null) {
      const idx = layerIndexOf(path, config.layersPattern);
      if (idx === undefined) return false;
      return typeof config.layersToTransform === 'number' ? idx === config.layersToTransform : config.layersToTransform.includes(idx);
    }
    return true;
  });
}

/**
 * How PEFT matched rank_pattern / alpha_pattern keys against a module path. Before 0.15 (LoraModel.
 * _create_and_replace): the first key over rank then alpha keys for which re.match(".*\.{key}$", path)
 * holds picks both values, else the full path is looked up as a key. From 0.15 (get_pattern_key):
 * re.match("(.*\.)?({key})$", path), for each pattern on its own. A key anchored with "^" matches
 * nothing the old way, so the same config gives other ranks in the two versions.
 */
export type PatternSemantics = 'before-0.15' | 'from-0.15';

/** The semantics of the PEFT version that saved the config (peft_version, written by newer PEFT), if it says. */
export function savedPatternSemantics(config: PeftLoraConfig): PatternSemantics | undefined {
  const v = config.raw.peft_version;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\.(\d+)/.exec(v);
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 0 || minor >= 15 ? 'from-0.15' : 'before-0.15';
}

function rx(source: string): RegExp | undefined {
  try {
    return new RegExp(source);
  } catch {
    // unreachable for parsed configs (keys are compiled when parsed); a hand-built config matches nothing
    return undefined;
  }
}

function patternValues(config: PeftLoraConfig, path: string, semantics: PatternSemantics): { r?: number; alpha?: number } {
  const { rankPattern, alphaPattern } = config;
  if (semantics === 'from-0.15') {
    const find = (pattern: Record<string, number>) => {
      const key = Object.keys(pattern).find((k) => rx(`^(?:(?:.*\\.)?(?:${k})$)`)?.test(path));
      return key === undefined ? undefined : pattern[key];
    };
    return { r: find(rankPattern), alpha: find(alphaPattern) };
  }
  // re.match anchors at the start only; "$" binds to the last alternative of the key, as in Python.
  const key = [...Object.keys(rankPattern), ...Object.keys(alphaPattern)].find((k) => rx(`^(?:.*\\.${k}$)`)?.test(path)) ?? path;
  return { r: Object.hasOwn(rankPattern, key) ? rankPattern[key] : undefined, alpha: Object.hasOwn(alphaPattern, key) ? alphaPattern[key] : undefined };
}

export interface ModuleHyper {
  r: number;
  alpha: number;
  /** alpha / r, or alpha / √r with use_rslora. */
  scale: number;
}

/**
 * r, α and scale of one module. `semantics`: how pattern keys match (default: the saving version's,
 * else PEFT before 0.15, which wrote no peft_version).
 */
export function moduleHyper(config: PeftLoraConfig, path: string, semantics?: PatternSemantics): ModuleHyper {
  const v = patternValues(config, path, semantics ?? savedPatternSemantics(config) ?? 'before-0.15');
  const r = v.r ?? config.r;
  const alpha = v.alpha ?? config.loraAlpha;
  return { r, alpha, scale: peftScale(alpha, r, config.useRslora) };
}

/**
 * Which pattern semantics the adapter's tensors were saved with: the saving version's when the config
 * names it, else the one (before 0.15 first) under which every module's r equals its tensors' rank.
 * Throws when no PEFT version would give the tensors' ranks: PEFT refuses such an adapter too.
 */
export function resolvePatternSemantics(config: PeftLoraConfig, tensorRanks: [path: string, rank: number][], source = 'adapter_config.json'): { semantics: PatternSemantics; notes: string[] } {
  const saved = savedPatternSemantics(config);
  const hasPatterns = Object.keys(config.rankPattern).length > 0 || Object.keys(config.alphaPattern).length > 0;
  const candidates: PatternSemantics[] = saved ? [saved] : ['before-0.15', 'from-0.15'];
  const mismatch = (sem: PatternSemantics) => tensorRanks.find(([p, rank]) => moduleHyper(config, p, sem).r !== rank);
  for (const sem of candidates) {
    if (mismatch(sem)) continue;
    const notes: string[] = [];
    const other: PatternSemantics = sem === 'before-0.15' ? 'from-0.15' : 'before-0.15';
    const differs = hasPatterns && tensorRanks.find(([p]) => {
      const a = moduleHyper(config, p, sem);
      const b = moduleHyper(config, p, other);
      return a.r !== b.r || a.alpha !== b.alpha;
    });
    if (differs) {
      const a = moduleHyper(config, differs[0], sem);
      const b = moduleHyper(config, differs[0], other);
      notes.push(
        `rank_pattern / alpha_pattern keys match as PEFT ${sem === 'before-0.15' ? 'before 0.15 (".*\\.{key}$")' : 'from 0.15 ("(.*\\.)?({key})$")'} did` +
          `${saved ? ` (peft_version ${String(config.raw.peft_version)})` : ', which is what the tensors\' ranks say'}: ` +
          `${differs[0]} has r ${a.r}, α ${a.alpha} (PEFT ${other === 'before-0.15' ? 'before 0.15' : '0.15 and later'} would read r ${b.r}, α ${b.alpha})`,
      );
    }
    return { semantics: sem, notes };
  }
  const [p, rank] = mismatch(candidates[0])!;
  const h = moduleHyper(config, p, candidates[0]);
  throw new InteropError(
    'shape-mismatch',
    `${source}: ${Object.keys(config.rankPattern).length ? 'r / rank_pattern' : '"r"'} give${Object.keys(config.rankPattern).length ? '' : 's'} r = ${h.r} for ${p}, but its lora_A has rank ${rank}` +
      `${saved ? ` (keys matched as PEFT ${String(config.raw.peft_version)}, which saved it, does)` : ' under the pattern rules of every PEFT version'}; PEFT refuses this adapter too (size mismatch)`,
    source,
  );
}

/**
 * Strip PEFT's wrapper prefix, adapter name and base-layer wrapper: "base_model.model.x.lora_A.default.weight"
 * -> "x.lora_A.weight", "base_model.model.x.base_layer.bias" -> "x.bias". PEFT up to 0.13 saves the
 * weights of a LoRA-wrapped layer (bias="all", embedding copies) under ".base_layer."; later versions
 * strip it on save: both name the same base tensor.
 */
export function normalizePeftKey(key: string): string {
  let k = key.startsWith('base_model.model.') ? key.slice('base_model.model.'.length) : key;
  k = k.replace(/\.base_layer(?=\.)/g, '');
  k = k.replace(/\.(lora_A|lora_B|lora_magnitude_vector|lora_embedding_A|lora_embedding_B)\.default(?=\.|$)/, '.$1');
  k = k.replace(/\.modules_to_save\.default(?=\.)/, '');
  return k;
}
