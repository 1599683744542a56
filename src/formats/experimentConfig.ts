// Experiment files (*.lora.json with comments, *.lora.yaml) -> a resolved ExperimentConfig.
//
// Pipeline: parse with positions (jsonc-parser / yaml) -> JSON Schema check (ajv, draft-07, the same
// schema the editor uses) -> cross-field rules the schema cannot express (r <= min(d, k), warm-up
// shorter than the run, ...) -> defaults filled per kind. Every problem is reported, not just the
// first, each with its JSON path and a text range, so the same result drives editor diagnostics and
// `file:line:col` CLI errors. Nothing here touches the file system: relative paths in the config
// (outputDir, modelPath, dataset.path) are returned as written and resolved by the caller against
// the config file's folder.

import Ajv, { type ErrorObject } from 'ajv';
import {
  findNodeAtLocation,
  getLocation,
  getNodePath,
  getNodeValue,
  parseTree,
  printParseErrorCode,
  type Node as JsonNode,
  type ParseError,
} from 'jsonc-parser';
import { isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { ATTENTION_TARGET_NAMES, attentionProjectionOf } from './attentionTargets';
import { CONFIG_LIMITS, EXPERIMENT_SCHEMA } from './experimentSchema';
import { FormatError } from './errors';
import { lineColumnAt, nestingTooDeep, showValue } from './jsonText';

export { nestingTooDeep } from './jsonText';
import type {
  AttentionAdaptationModel,
  CausalLmModel,
  ConfigIssue,
  ExperimentConfig,
  ExperimentKind,
  LoraSettings,
  LowRankRecoveryModel,
  ModelSettings,
  OptimizerSettings,
  ScheduleSettings,
  TrainingSettings,
} from './experimentTypes';

export type { ConfigIssue, ExperimentConfig } from './experimentTypes';

export type ParseExperimentResult =
  | { config: ExperimentConfig; issues: ConfigIssue[]; sweep?: SweepVariant[] }
  | { config?: undefined; issues: ConfigIssue[]; sweep?: undefined };

/** One run of a sweep: the listed values it takes and the config they make (its name says them). */
export interface SweepVariant {
  /** e.g. `lora.r = 4` (`, `-joined when several fields are lists). */
  label: string;
  settings: { path: string; value: unknown }[];
  config: ExperimentConfig;
}

/** A JSON path as segments: property names and array indices. */
export type PathSegments = readonly (string | number)[];

export interface TextRange {
  offset: number;
  length: number;
}

export const EXPERIMENT_KINDS: readonly ExperimentKind[] = ['low-rank-recovery', 'attention-adaptation', 'causal-lm'];

/** True for file names this module parses as YAML (everything else is JSON with comments). */
export function isYamlFileName(fileName: string): boolean {
  return /\.ya?ml$/i.test(fileName);
}

// ---------------------------------------------------------------------------------------------
// Parsing with positions: one small interface over jsonc-parser's and yaml's syntax trees.

interface SyntaxProblem {
  severity: 'error' | 'warning';
  path?: (string | number)[];
  message: string;
  offset: number;
  length: number;
}

interface ParsedText {
  value: unknown;
  problems: SyntaxProblem[];
  /** Range of the value at `path`. */
  valueRange(path: PathSegments): TextRange | undefined;
  /** Range of the key naming `path`'s last segment (the value range for array items). */
  keyRange(path: PathSegments): TextRange | undefined;
  /** Path of the key or value under `offset` (innermost). */
  pathAt(offset: number): (string | number)[];
}

const JSON_ERROR_TEXT: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a property name in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: 'expected a colon after the property name',
  CommaExpected: 'expected a comma',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: 'expected the end of the file (only one top-level value is allowed)',
  InvalidCommentToken: 'invalid comment',
  UnexpectedEndOfComment: 'unterminated comment',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'unterminated number',
  InvalidUnicode: 'invalid unicode escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'invalid character in a string',
};

function parseJsonText(text: string): ParsedText {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: true });
  const problems: SyntaxProblem[] = errors.map((e) => {
    const code = printParseErrorCode(e.error);
    return { severity: 'error', message: `JSON syntax: ${JSON_ERROR_TEXT[code] ?? code}`, offset: e.offset, length: Math.max(1, e.length) };
  });
  if (root) findDuplicateKeys(root, problems);
  const nodeAt = (path: PathSegments): JsonNode | undefined => (root ? findNodeAtLocation(root, [...path]) : undefined);
  return {
    value: root && problems.length === 0 ? getNodeValue(root) : undefined,
    problems,
    valueRange(path) {
      const n = path.length === 0 ? root : nodeAt(path);
      return n ? { offset: n.offset, length: n.length } : undefined;
    },
    keyRange(path) {
      const n = path.length === 0 ? root : nodeAt(path);
      const key = n?.parent?.type === 'property' ? n.parent.children?.[0] : undefined;
      if (key) return { offset: key.offset, length: key.length };
      return n ? { offset: n.offset, length: n.length } : undefined;
    },
    pathAt(offset) {
      const loc = getLocation(text, offset);
      const path = [...loc.path];
      while (path.length > 0 && path[path.length - 1] === '') path.pop();
      return path;
    },
  };
}

function findDuplicateKeys(node: JsonNode, problems: SyntaxProblem[]): void {
  if (node.type === 'object') {
    const seen = new Set<string>();
    for (const prop of node.children ?? []) {
      const key = prop.children?.[0];
      if (!key) continue;
      const name = String(key.value);
      if (seen.has(name)) {
        const path = [...getNodePath(prop), name];
        problems.push({ severity: 'error', path, message: `duplicate key \`${name}\` (only one may appear)`, offset: key.offset, length: key.length });
      }
      seen.add(name);
    }
  }
  for (const child of node.children ?? []) findDuplicateKeys(child, problems);
}

function parseYamlText(text: string): ParsedText {
  // logLevel 'error': the library's warnings (a list used as a key) would go to process warnings on
  // stderr; such a key is reported as an unknown key here anyway.
  const doc: Document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, strict: true, logLevel: 'error' });
  const problems: SyntaxProblem[] = [];
  for (const [severity, list] of [['error', doc.errors], ['warning', doc.warnings]] as const) {
    for (const e of list) {
      const [start, end] = e.pos;
      const message = e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
      problems.push({ severity, message: `YAML: ${message}`, offset: start, length: Math.max(1, end - start) });
    }
  }
  const range = (node: unknown): TextRange | undefined => {
    const r = (node as { range?: [number, number, number] } | undefined)?.range;
    return r ? { offset: r[0], length: Math.max(0, r[1] - r[0]) } : undefined;
  };
  let value: unknown;
  if (!problems.some((p) => p.severity === 'error')) {
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push({ severity: 'error', message: `YAML: ${(e as Error).message}`, offset: 0, length: 1 });
    }
  }
  const pairOf = (path: PathSegments) => {
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    return parent.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(last));
  };
  return {
    value: value === null ? undefined : value, // an empty document is "no content"
    problems,
    valueRange(path) {
      if (path.length === 0) return range(doc.contents);
      const pair = pairOf(path);
      if (pair) return range(pair.value) ?? range(pair.key);
      return range(doc.getIn(path, true));
    },
    keyRange(path) {
      if (path.length === 0) return range(doc.contents);
      const pair = pairOf(path);
      return pair ? range(pair.key) : range(doc.getIn(path, true));
    },
    pathAt(offset) {
      const found: (string | number)[] = [];
      const inside = (node: unknown) => {
        const r = (node as { range?: [number, number, number] } | null)?.range;
        return !!r && offset >= r[0] && offset <= r[1];
      };
      let node: unknown = doc.contents;
      for (;;) {
        if (isMap(node)) {
          const pair = node.items.find((p) => inside(p.key) || inside(p.value));
          if (!pair) break;
          found.push(isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
          if (inside(pair.key)) break;
          node = pair.value;
        } else if (isSeq(node)) {
          const i = node.items.findIndex((item) => inside(item));
          if (i < 0) break;
          found.push(i);
          node = node.items[i];
        } else break;
      }
      return found;
    },
  };
}

function parseText(text: string, fileName: string): ParsedText {
  return isYamlFileName(fileName) ? parseYamlText(text) : parseJsonText(text);
}

/** Text range of the value at `path` (or of its key, with part 'key'); undefined when absent. */
export function findNodeAtPath(text: string, fileName: string, path: PathSegments | string, part: 'value' | 'key' = 'value'): TextRange | undefined {
  const doc = parseText(text, fileName);
  const segs = typeof path === 'string' ? parsePathString(path) : path;
  return part === 'key' ? doc.keyRange(segs) : doc.valueRange(segs);
}

/** JSON path of the key or value at `offset`, e.g. ["lora", "r"]; [] at the top level. */
export function pathAtOffset(text: string, fileName: string, offset: number): (string | number)[] {
  return parseText(text, fileName).pathAt(offset);
}

/** ["lora", "targetModules", 1] -> "lora.targetModules[1]". */
export function formatPath(path: PathSegments): string {
  let out = '';
  for (const s of path) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/** "lora.targetModules[1]" -> ["lora", "targetModules", 1]. */
export function parsePathString(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Schema documentation lookups (for hovers and completions).

export interface SchemaInfo {
  description?: string;
  default?: unknown;
  type?: string;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
}

type SchemaNode = Record<string, unknown>;

function deref(node: SchemaNode | undefined): SchemaNode | undefined {
  const ref = node?.$ref;
  if (typeof ref !== 'string') return node;
  const name = ref.replace('#/definitions/', '');
  return (EXPERIMENT_SCHEMA.definitions as Record<string, SchemaNode>)[name];
}

const MODEL_DEFINITION: Record<ExperimentKind, string> = {
  'low-rank-recovery': 'lowRankRecoveryModel',
  'attention-adaptation': 'attentionAdaptationModel',
  'causal-lm': 'causalLmModel',
};

function schemaNodeAt(path: PathSegments, kind?: ExperimentKind): SchemaNode | undefined {
  let node: SchemaNode | undefined = EXPERIMENT_SCHEMA as unknown as SchemaNode;
  for (const [i, seg] of path.entries()) {
    if (!node) return undefined;
    if (typeof seg === 'number') {
      node = deref(node.items as SchemaNode | undefined);
      continue;
    }
    if (i === 0 && seg === 'model' && kind) {
      node = (EXPERIMENT_SCHEMA.definitions as Record<string, SchemaNode>)[MODEL_DEFINITION[kind]];
      continue;
    }
    const props = node.properties as Record<string, SchemaNode> | undefined;
    node = deref(props?.[seg]);
  }
  return node;
}

/** The schema's documentation for a path (e.g. ["lora", "alpha"]); `kind` selects the model section. */
export function schemaInfoAt(path: PathSegments, kind?: ExperimentKind): SchemaInfo | undefined {
  const node = schemaNodeAt(path, kind);
  if (!node) return undefined;
  const info: SchemaInfo = {};
  if (typeof node.description === 'string') info.description = node.description;
  if ('default' in node) info.default = node.default;
  if (typeof node.type === 'string') info.type = node.type;
  if (Array.isArray(node.enum)) info.enum = node.enum;
  if (typeof node.minimum === 'number') info.minimum = node.minimum;
  if (typeof node.maximum === 'number') info.maximum = node.maximum;
  return info;
}

/** The keys allowed in the object at `path` (for completions and "did you mean"). */
export function allowedKeysAt(path: PathSegments, kind?: ExperimentKind): string[] {
  const props = schemaNodeAt(path, kind)?.properties;
  return props ? Object.keys(props) : [];
}

// ---------------------------------------------------------------------------------------------
// Defaults.

/** What a user writes: every section and field optional except `kind` (and causal-lm's model). */
export interface ExperimentFile {
  $schema?: string;
  name?: string;
  kind: ExperimentKind;
  model?: Record<string, unknown>;
  lora?: Partial<LoraSettings>;
  optimizer?: Partial<OptimizerSettings>;
  schedule?: Partial<ScheduleSettings>;
  training?: Partial<TrainingSettings>;
  outputDir?: string;
}

/** Per-kind defaults of fields whose default depends on the kind (the schema's descriptions say the same). */
export const KIND_DEFAULTS: Readonly<
  Record<
    ExperimentKind,
    {
      init: LoraSettings['init'];
      targetModules: string[];
      optimizer: OptimizerSettings['name'];
      lr: number;
      gradClip: number;
      schedule: ScheduleSettings['name'];
      steps: number;
      batchSize: number;
    }
  >
> = {
  'low-rank-recovery': { init: 'gaussian', targetModules: ['linear'], optimizer: 'adam', lr: 0.01, gradClip: 0, schedule: 'constant', steps: 300, batchSize: 64 },
  'attention-adaptation': { init: 'gaussian', targetModules: ['q', 'k', 'v'], optimizer: 'adam', lr: 0.01, gradClip: 0, schedule: 'constant', steps: 500, batchSize: 64 },
  // targetModules [] = "the model type's PEFT default" (Llama: q_proj, v_proj; GPT-2: c_attn), chosen when the model is loaded.
  'causal-lm': { init: 'kaiming-uniform', targetModules: [], optimizer: 'adamw', lr: 2e-4, gradClip: 1, schedule: 'cosine', steps: 200, batchSize: 8 },
};

function defaultName(fileName: string | undefined, kind: ExperimentKind): string {
  if (!fileName) return kind;
  const base = fileName.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.lora\.(json|jsonc|ya?ml)$/i, '').replace(/\.(json|jsonc|ya?ml)$/i, '');
  return stem || kind;
}

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const numOr = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const intOr = (v: unknown, d: number): number => (typeof v === 'number' && Number.isInteger(v) ? v : d);
const strOr = (v: unknown, d: string): string => (typeof v === 'string' && v.length > 0 ? v : d);
function enumOr<T extends string>(v: unknown, allowed: readonly T[], d: T): T {
  return allowed.includes(v as T) ? (v as T) : d;
}

/**
 * Fills every default of an experiment file. Values of the wrong type are replaced by defaults (so
 * this can run on a file that failed validation, for best-effort checks); `parseExperimentConfig`
 * only returns a config when there was no error. Throws FormatError when `kind` is not known.
 */
export function resolveConfigDefaults(file: ExperimentFile | Record<string, unknown>, fileName?: string): ExperimentConfig {
  const f = file as Record<string, unknown>;
  const kind = f.kind as ExperimentKind;
  if (!EXPERIMENT_KINDS.includes(kind)) {
    throw new FormatError('invalid-config', `\`kind\` must be one of ${EXPERIMENT_KINDS.join(', ')}, got ${showValue(f.kind)}`, { source: fileName });
  }
  const kd = KIND_DEFAULTS[kind];
  const m = obj(f.model);
  const l = obj(f.lora);
  const o = obj(f.optimizer);
  const s = obj(f.schedule);
  const t = obj(f.training);

  let model: ModelSettings;
  if (kind === 'low-rank-recovery') {
    model = {
      kind,
      inFeatures: intOr(m.inFeatures, 64),
      outFeatures: intOr(m.outFeatures, 64),
      trueRank: intOr(m.trueRank, 4),
      updateScale: numOr(m.updateScale, 0.5),
      noise: numOr(m.noise, 0),
    } satisfies LowRankRecoveryModel;
  } else if (kind === 'attention-adaptation') {
    const seqLen = intOr(m.seqLen, 8);
    model = {
      kind,
      embedDim: intOr(m.embedDim, 32),
      numHeads: intOr(m.numHeads, 1),
      seqLen,
      kvSeqLen: intOr(m.kvSeqLen, seqLen),
      trueRank: intOr(m.trueRank, 2),
      updateScale: numOr(m.updateScale, 0.5),
    } satisfies AttentionAdaptationModel;
  } else {
    const d = obj(m.dataset);
    model = {
      kind,
      modelPath: strOr(m.modelPath, ''),
      dataset: {
        path: strOr(d.path, ''),
        seqLen: intOr(d.seqLen, 64),
        evalFraction: numOr(d.evalFraction, 0.1),
        tokenizer: enumOr(d.tokenizer, ['bytes', 'tokenizer'] as const, 'bytes'),
      },
    } satisfies CausalLmModel;
  }

  const r = intOr(l.r, 4);
  const lora: LoraSettings = {
    r,
    alpha: numOr(l.alpha, r),
    scaling: enumOr(l.scaling, ['standard', 'rslora', 'none'] as const, 'standard'),
    dropout: numOr(l.dropout, 0),
    init: enumOr(l.init, ['gaussian', 'kaiming-uniform'] as const, kd.init),
    targetModules: Array.isArray(l.targetModules) && l.targetModules.every((x) => typeof x === 'string') ? [...(l.targetModules as string[])] : [...kd.targetModules],
    trainBias: typeof l.trainBias === 'boolean' ? l.trainBias : false,
    useDora: typeof l.useDora === 'boolean' ? l.useDora : false,
  };

  const optName = enumOr(o.name, ['sgd', 'adam', 'adamw'] as const, kd.optimizer);
  const optimizer: OptimizerSettings = {
    name: optName,
    lr: numOr(o.lr, kd.lr),
    weightDecay: numOr(o.weightDecay, optName === 'adamw' ? 0.01 : 0),
    beta1: numOr(o.beta1, 0.9),
    beta2: numOr(o.beta2, 0.999),
    eps: numOr(o.eps, 1e-8),
    momentum: numOr(o.momentum, 0),
    gradClip: numOr(o.gradClip, kd.gradClip),
  };

  const schedule: ScheduleSettings = {
    name: enumOr(s.name, ['constant', 'linear', 'cosine'] as const, kd.schedule),
    warmupSteps: intOr(s.warmupSteps, 0),
    minLrRatio: numOr(s.minLrRatio, 0.1),
  };

  const steps = intOr(t.steps, kd.steps);
  const noEvalData = model.kind === 'causal-lm' && model.dataset.evalFraction === 0;
  const training: TrainingSettings = {
    steps,
    batchSize: intOr(t.batchSize, kd.batchSize),
    seed: intOr(t.seed, 0),
    evalEvery: intOr(t.evalEvery, noEvalData ? 0 : Math.max(1, Math.floor(steps / 10))),
    evalBatches: intOr(t.evalBatches, 4),
    checkpointEvery: intOr(t.checkpointEvery, Math.max(1, Math.floor(steps / 10))),
    keepCheckpoints: intOr(t.keepCheckpoints, 10),
    logEvery: intOr(t.logEvery, 1),
    gradientCheckpointing: typeof t.gradientCheckpointing === 'boolean' ? t.gradientCheckpointing : false,
  };

  return {
    name: strOr(f.name, defaultName(fileName, kind)),
    kind,
    model,
    lora,
    optimizer,
    schedule,
    training,
    outputDir: strOr(f.outputDir, 'lora-runs'),
  };
}

// ---------------------------------------------------------------------------------------------
// Validation.

let validator: ReturnType<Ajv['compile']> | undefined;

function getValidator() {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' }); // VS Code's hover text, an annotation only
    validator = ajv.compile(EXPERIMENT_SCHEMA);
  }
  return validator;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The closest candidate (case-insensitive edit distance, or a prefix/suffix match), if close enough. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const cl = c.toLowerCase();
    let score = editDistance(lower, cl);
    if (cl.startsWith(lower) || lower.startsWith(cl) || cl.endsWith(lower) || lower.endsWith(cl)) score = Math.min(score, 1.5);
    if (score < bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return String(v);
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
};

function instancePath(e: ErrorObject): (string | number)[] {
  if (!e.instancePath) return [];
  return e.instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

interface RawIssue {
  severity: 'error' | 'warning';
  path: (string | number)[];
  message: string;
  /** Point at the key (unknown keys) or the parent (missing keys) instead of the value. */
  anchor?: 'key' | 'parent';
}

function schemaIssue(e: ErrorObject, data: unknown): RawIssue | undefined {
  const path = instancePath(e);
  const name = `\`${formatPath(path) || '(top level)'}\``;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'if':
      return undefined; // the failing `then` branch reports the real problem
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(((e.parentSchema as SchemaNode | undefined)?.properties as object) ?? {});
      const hint = closestName(key, allowed);
      const where = path.length ? ` in \`${formatPath(path)}\`` : '';
      const tail = hint ? ` — did you mean \`${hint}\`?` : allowed.length ? ` (allowed: ${allowed.join(', ')})` : '';
      return { severity: 'error', path: [...path, key], message: `unknown key \`${key}\`${where}${tail}`, anchor: 'key' };
    }
    case 'required': {
      const missing = String(params.missingProperty);
      const full = formatPath([...path, missing]);
      const kind = (data as { kind?: unknown } | null)?.kind;
      let message = `\`${full}\` is required`;
      if (full === 'kind') message += `: one of ${EXPERIMENT_KINDS.map((k) => `"${k}"`).join(', ')}`;
      else if (full === 'model') message += ` for kind "${String(kind)}": give \`modelPath\` (a Hugging Face model folder) and \`dataset\``;
      else if (full === 'model.modelPath') message += ' for kind "causal-lm": the folder with config.json and model.safetensors';
      else if (full === 'model.dataset') message += ' for kind "causal-lm": { "path": "train.txt" }';
      return { severity: 'error', path: [...path, missing], message, anchor: 'parent' };
    }
    case 'type':
      if (path.length === 0) return { severity: 'error', path, message: `the file must hold an object of settings (key: value pairs), got ${describeValue(e.data)}` };
      if (typeof e.data === 'number' && !Number.isFinite(e.data)) return { severity: 'error', path, message: `${name} must be a finite number, got ${e.data}` };
      return { severity: 'error', path, message: `${name} must be ${TYPE_WORDS[String(params.type)] ?? params.type}, got ${describeValue(e.data)}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const hint = typeof e.data === 'string' ? closestName(e.data, allowed) : undefined;
      return {
        severity: 'error',
        path,
        message: `${name} must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describeValue(e.data)}${hint ? ` — did you mean "${hint}"?` : ''}`,
      };
    }
    case 'const':
      return {
        severity: 'error',
        path,
        message: path[path.length - 1] === 'kind' ? `${name} must equal the top-level kind "${String(params.allowedValue)}", got ${describeValue(e.data)}` : `${name} must be ${JSON.stringify(params.allowedValue)}`,
      };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const op = { minimum: '≥', maximum: '≤', exclusiveMinimum: '>', exclusiveMaximum: '<' }[e.keyword];
      const integer = (e.parentSchema as SchemaNode | undefined)?.type === 'integer';
      const what = integer && e.keyword === 'minimum' && params.limit === 1 ? 'a positive integer' : `${op} ${params.limit}`;
      return { severity: 'error', path, message: `${name} must be ${what}, got ${describeValue(e.data)}` };
    }
    case 'minLength':
      return { severity: 'error', path, message: `${name} must not be empty` };
    case 'minItems':
      return { severity: 'error', path, message: `${name} must list at least ${params.limit} item${params.limit === 1 ? '' : 's'}` };
    case 'uniqueItems': {
      const list = e.data as unknown[];
      const later = Math.max(params.i as number, params.j as number);
      return { severity: 'error', path: [...path, later], message: `${name} lists ${describeValue(list[later])} twice` };
    }
    default:
      return { severity: 'error', path, message: `${name} ${e.message ?? 'is invalid'}` };
  }
}

/** The raw value at a path in the file's data, or undefined. */
function getAt(data: unknown, path: PathSegments): unknown {
  let v: unknown = data;
  for (const s of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v;
}

/** Rules that span fields (or need the kind), checked on the resolved values. */
function crossFieldIssues(c: ExperimentConfig, data: unknown, badPaths: Set<string>): RawIssue[] {
  const out: RawIssue[] = [];
  const has = (p: string) => getAt(data, parsePathString(p)) !== undefined;
  // A rule speaks only when none of its fields already has a schema error, and points at a field the user wrote.
  const report = (severity: RawIssue['severity'], paths: string[], message: string) => {
    const bad = (p: string) => [...badPaths].some((b) => b === p || p.startsWith(`${b}.`) || p.startsWith(`${b}[`));
    if (paths.some(bad)) return;
    const at = paths.find(has) ?? paths[0];
    out.push({ severity, path: parsePathString(at), message, anchor: has(at) ? undefined : 'parent' });
  };
  const { lora, training: t, optimizer: o, schedule: s, model: m } = c;

  if (lora.useDora && m.kind !== 'causal-lm') {
    report('error', ['lora.useDora'], `\`lora.useDora\` is supported by kind "causal-lm" only (a PEFT DoRA adapter on a Hugging Face model), not by "${m.kind}"`);
  }
  if (m.kind === 'low-rank-recovery') {
    const minDk = Math.min(m.inFeatures, m.outFeatures);
    if (m.trueRank > minDk) {
      report('error', ['model.trueRank', 'model.inFeatures', 'model.outFeatures'], `\`model.trueRank\` (${m.trueRank}) must be ≤ min(inFeatures, outFeatures) = ${minDk}: a ${m.outFeatures}×${m.inFeatures} update has at most rank ${minDk}`);
    }
    if (lora.r > minDk) {
      report('error', ['lora.r', 'model.inFeatures', 'model.outFeatures'], `\`lora.r\` (${lora.r}) must be ≤ min(inFeatures, outFeatures) = ${minDk}; a larger rank adds parameters and no expressiveness`);
    }
    if (has('lora.targetModules')) report('warning', ['lora.targetModules'], '`lora.targetModules` is ignored by kind "low-rank-recovery" (it has a single linear layer)');
  } else if (m.kind === 'attention-adaptation') {
    if (m.embedDim % m.numHeads !== 0) {
      report('error', ['model.numHeads', 'model.embedDim'], `\`model.embedDim\` (${m.embedDim}) must be divisible by \`model.numHeads\` (${m.numHeads})`);
    }
    if (m.trueRank > m.embedDim) report('error', ['model.trueRank', 'model.embedDim'], `\`model.trueRank\` (${m.trueRank}) must be ≤ embedDim (${m.embedDim})`);
    if (lora.r > m.embedDim) report('error', ['lora.r', 'model.embedDim'], `\`lora.r\` (${lora.r}) must be ≤ embedDim (${m.embedDim}), the size of the adapted projections`);
    // The same rule the engine applies (attentionTargets.ts).
    lora.targetModules.forEach((name, i) => {
      if (!attentionProjectionOf(name)) {
        const hint = closestName(name.split('.').pop() ?? name, ATTENTION_TARGET_NAMES);
        report('error', [`lora.targetModules[${i}]`], `\`lora.targetModules[${i}]\` must name an attention projection (q, k, v, o or q_proj, k_proj, v_proj, o_proj) for kind "attention-adaptation", got "${name}"${hint ? ` — did you mean "${hint}"?` : ''}`);
      }
    });
    const chosen = [...new Set(lora.targetModules.map(attentionProjectionOf))].sort().join(',');
    if (m.numHeads === 1 && has('lora.targetModules') && chosen !== 'k,q,v') {
      report('warning', ['lora.targetModules'], '`lora.targetModules` is ignored with `model.numHeads` 1: the reference LoRA code\'s single-head LoRAAttention always adapts q, k and v (use numHeads ≥ 2 to choose)');
    }
    if (m.numHeads === 1 && lora.trainBias) {
      report('warning', ['lora.trainBias'], '`lora.trainBias` is ignored with `model.numHeads` 1: the reference LoRA code\'s LoRAAttention keeps the biases of W_Q, W_K, W_V frozen (its W_O trains in full)');
    }
  } else {
    if (!/\.(txt|jsonl)$/i.test(m.dataset.path)) {
      report('error', ['model.dataset.path'], `\`model.dataset.path\` must be a .txt or .jsonl file, got "${m.dataset.path}"`);
    }
    if (lora.trainBias) {
      report('error', ['lora.trainBias'], '`lora.trainBias` must be false for kind "causal-lm": the biases stay frozen (PEFT\'s bias "none")');
    }
    if (m.dataset.evalFraction === 0 && t.evalEvery > 0) {
      report('error', ['training.evalEvery', 'model.dataset.evalFraction'], '`training.evalEvery` > 0 needs held-out text: set `model.dataset.evalFraction` > 0 (or evalEvery to 0)');
    }
  }

  // Sizes across fields, before anything is allocated: each field may be within its limit while the
  // tensor they make together is not.
  const big = (n: number) => `${n.toLocaleString('en-US')}`;
  const maxElems = CONFIG_LIMITS.tensorElements;
  if (m.kind === 'low-rank-recovery') {
    const n = t.batchSize * Math.max(m.inFeatures, m.outFeatures);
    if (n > maxElems) {
      report('error', ['training.batchSize', 'model.inFeatures', 'model.outFeatures'], `\`training.batchSize\` × max(inFeatures, outFeatures) = ${big(n)} values per batch, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size or the layer size`);
    }
  } else if (m.kind === 'attention-adaptation') {
    const scores = t.batchSize * m.numHeads * m.seqLen * m.kvSeqLen;
    const acts = t.batchSize * Math.max(m.seqLen, m.kvSeqLen) * m.embedDim;
    if (scores > maxElems) {
      report('error', ['model.seqLen', 'model.kvSeqLen', 'training.batchSize', 'model.numHeads'], `\`training.batchSize\` × \`model.numHeads\` × \`model.seqLen\` × \`model.kvSeqLen\` = ${big(scores)} attention scores per step, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size or the sequence lengths`);
    } else if (acts > maxElems) {
      report('error', ['model.seqLen', 'model.kvSeqLen', 'training.batchSize', 'model.embedDim'], `\`training.batchSize\` × max(seqLen, kvSeqLen) × \`model.embedDim\` = ${big(acts)} activations per step, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size, the sequence lengths or embedDim`);
    }
  } else {
    const tokens = t.batchSize * m.dataset.seqLen;
    if (tokens > CONFIG_LIMITS.lmTokensPerStep) {
      report('error', ['training.batchSize', 'model.dataset.seqLen'], `\`training.batchSize\` × \`model.dataset.seqLen\` = ${big(tokens)} tokens per step, more than ${big(CONFIG_LIMITS.lmTokensPerStep)} (2^20; the logits are that times the vocabulary): lower the batch size or the sequence length`);
    }
  }

  if (s.warmupSteps > 0 && s.warmupSteps >= t.steps) {
    report('error', ['schedule.warmupSteps', 'training.steps'], `\`schedule.warmupSteps\` (${s.warmupSteps}) must be less than \`training.steps\` (${t.steps})`);
  }
  for (const k of ['evalEvery', 'checkpointEvery', 'logEvery'] as const) {
    if (t[k] > t.steps) report('error', [`training.${k}`, 'training.steps'], `\`training.${k}\` (${t[k]}) must be ≤ \`training.steps\` (${t.steps}), or it never happens`);
  }
  if (t.evalEvery === 0 && has('training.evalBatches')) report('warning', ['training.evalBatches'], '`training.evalBatches` is ignored because `training.evalEvery` is 0 (no evaluation)');

  if (lora.scaling === 'none' && has('lora.alpha')) report('warning', ['lora.alpha'], '`lora.alpha` is ignored with `lora.scaling` "none" (the scale is 1)');
  if (o.name !== 'sgd' && o.momentum > 0) report('warning', ['optimizer.momentum'], `\`optimizer.momentum\` is used by "sgd" only and is ignored by "${o.name}"`);
  if (o.name === 'sgd') {
    for (const k of ['beta1', 'beta2', 'eps'] as const) if (has(`optimizer.${k}`)) report('warning', [`optimizer.${k}`], `\`optimizer.${k}\` is used by Adam/AdamW only and is ignored by "sgd"`);
  }
  if (s.name === 'constant' && has('schedule.minLrRatio')) report('warning', ['schedule.minLrRatio'], '`schedule.minLrRatio` is ignored by the "constant" schedule');
  return out;
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/**
 * Parses and validates an experiment file. `fileName` picks the syntax (.yaml/.yml = YAML, else JSON
 * with comments) and the default `name`. Returns the resolved config only when there is no error;
 * warnings (ignored fields) come with it.
 */
export function parseExperimentConfig(text: string, fileName: string): ParseExperimentResult {
  // A UTF-8 byte order mark (Notepad writes one) is not part of the text; editors do not show it either.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const starts = lineStarts(text);
  const tooDeep = nestingTooDeep(text, isYamlFileName(fileName), CONFIG_LIMITS.depth);
  if (tooDeep !== undefined) {
    // Refused unparsed: the parsers and the schema check recurse once per level (a 10,000-deep file
    // overflowed the stack).
    const { line, column } = lineColumnAt(text, tooDeep);
    return {
      issues: [
        {
          severity: 'error',
          path: '',
          message: `the file is nested more than ${CONFIG_LIMITS.depth} levels deep (objects or lists inside each other); an experiment config needs about 4`,
          offset: tooDeep,
          length: 1,
          line,
          column,
        },
      ],
    };
  }
  const doc = parseText(text, fileName);
  const toIssue = (severity: ConfigIssue['severity'], path: PathSegments, message: string, range: TextRange | undefined): ConfigIssue => {
    const offset = Math.min(range?.offset ?? 0, text.length);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { severity, path: formatPath(path), message, offset, length: range?.length ?? 0, line: lo + 1, column: offset - starts[lo] + 1 };
  };

  const issues: ConfigIssue[] = doc.problems.map((p) => toIssue(p.severity, p.path ?? [], p.message, p)).sort((a, b) => a.offset - b.offset);
  if (issues.some((i) => i.severity === 'error')) return { issues };
  if (doc.value === undefined) {
    return { issues: [...issues, toIssue('error', [], 'the file is empty: an experiment needs at least a `kind` (e.g. "low-rank-recovery")', { offset: 0, length: 0 })] };
  }

  const locate = (raw: RawIssue): TextRange | undefined => {
    if (raw.anchor === 'key') return doc.keyRange(raw.path);
    if (raw.anchor === 'parent') {
      // The field is missing: point at the nearest key the user did write.
      for (let n = raw.path.length - 1; n >= 1; n--) {
        const r = doc.keyRange(raw.path.slice(0, n));
        if (r) return r;
      }
      const root = doc.valueRange([]);
      return root ? { offset: root.offset, length: Math.min(root.length, 1) } : undefined;
    }
    return doc.valueRange(raw.path) ?? doc.keyRange(raw.path);
  };

  const axes = findSweepAxes(doc.value);
  if (axes.length === 0) {
    const checked = checkValue(doc.value, fileName);
    for (const raw of checked.raws) issues.push(toIssue(raw.severity, raw.path, raw.message, locate(raw)));
    issues.sort((a, b) => a.offset - b.offset || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
    if (!checked.config || issues.some((i) => i.severity === 'error')) return { issues };
    return { config: checked.config, issues };
  }

  // A sweep: every combination of the listed values is checked as the config it makes, and a problem
  // with one value is reported at that list element.
  const empty = axes.find((a) => a.values.length === 0);
  const count = axes.reduce((n, a) => n * a.values.length, 1);
  if (empty) {
    issues.push(toIssue('error', empty.path, `\`${formatPath(empty.path)}\` is an empty list: a sweep needs at least one value`, locate({ severity: 'error', path: empty.path, message: '' })));
    return { issues };
  }
  if (count > MAX_SWEEP_RUNS) {
    const where = axes[0].path;
    const lists = axes.map((a) => `\`${formatPath(a.path)}\` (${a.values.length})`).join(' × ');
    issues.push(toIssue('error', where, `this sweep makes ${count} runs (${lists}); at most ${MAX_SWEEP_RUNS} runs per config`, locate({ severity: 'error', path: where, message: '' })));
    return { issues };
  }
  const seen = new Set<string>();
  const sweep: SweepVariant[] = [];
  for (const combo of combinations(axes.map((a) => a.values.length))) {
    const value = structuredClone(doc.value) as Record<string, unknown>;
    const settings = axes.map((a, i) => {
      setAtPath(value, a.path, a.values[combo[i]]);
      return { path: formatPath(a.path), value: a.values[combo[i]] };
    });
    const checked = checkValue(value, fileName);
    for (const raw of checked.raws) {
      const at = axes.findIndex((a) => a.path.length <= raw.path.length && a.path.every((seg, k) => raw.path[k] === seg));
      const path = at >= 0 ? [...axes[at].path, combo[at], ...raw.path.slice(axes[at].path.length)] : raw.path;
      const key = `${formatPath(path)}\u0000${raw.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(toIssue(raw.severity, path, raw.message, locate({ ...raw, path })));
    }
    if (checked.config) {
      const suffix = settings.map((x) => sweepValueText(x.path, x.value)).join('-');
      sweep.push({ label: settings.map((x) => `${x.path} = ${JSON.stringify(x.value)}`).join(', '), settings, config: { ...checked.config, name: `${checked.config.name}-${suffix}` } });
    }
  }
  issues.sort((a, b) => a.offset - b.offset || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  if (issues.some((i) => i.severity === 'error') || sweep.length !== count) return { issues };
  return { config: sweep[0].config, issues, sweep };
}

function checkValue(value: unknown, fileName: string): { raws: RawIssue[]; config?: ExperimentConfig } {
  const validate = getValidator();
  const raws: RawIssue[] = [];
  if (!validate(value)) {
    const seen = new Set<string>();
    for (const e of validate.errors ?? []) {
      const raw = schemaIssue(e, value);
      if (!raw) continue;
      const key = `${formatPath(raw.path)}\u0000${raw.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      raws.push(raw);
    }
  }
  const obj = value as Record<string, unknown>;
  const kindOk = typeof obj === 'object' && obj !== null && !Array.isArray(obj) && EXPERIMENT_KINDS.includes(obj.kind as ExperimentKind);
  let config: ExperimentConfig | undefined;
  if (kindOk) {
    config = resolveConfigDefaults(obj, fileName);
    const badPaths = new Set(raws.filter((r) => r.severity === 'error').map((r) => formatPath(r.path)));
    raws.push(...crossFieldIssues(config, obj, badPaths));
  }
  return { raws, config };
}

// ---------------------------------------------------------------------------------------------
// Sweeps: a field whose schema type is a scalar, given as a list (`"lora": {"r": [1, 2, 4, 8]}`),
// makes one run per value; several such lists make every combination.

/** More runs than this from one config is almost certainly a mistake (a long list pasted in a field). */
export const MAX_SWEEP_RUNS = 64;

export interface SweepAxis {
  path: (string | number)[];
  values: unknown[];
}

const SCALAR_TYPES = new Set(['integer', 'number', 'string', 'boolean']);

/** The fields of a parsed config file given as lists where the schema expects one value, in document order. */
export function findSweepAxes(value: unknown): SweepAxis[] {
  const out: SweepAxis[] = [];
  const root = value as Record<string, unknown>;
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return out;
  const kind = EXPERIMENT_KINDS.includes(root.kind as ExperimentKind) ? (root.kind as ExperimentKind) : undefined;
  const walk = (node: unknown, path: string[]): void => {
    if (typeof node !== 'object' || node === null) return;
    if (Array.isArray(node)) {
      const info = path.length ? schemaInfoAt(path, kind) : undefined;
      if (info && ((info.type !== undefined && SCALAR_TYPES.has(info.type)) || (info.type === undefined && info.enum)) && node.every((x) => x === null || typeof x !== 'object')) out.push({ path, values: node });
      return;
    }
    for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
  };
  walk(root, []);
  return out;
}

/** A run name's part for one value: the value itself for words ("adam"), key and value for numbers ("r4"). */
function sweepValueText(path: string, v: unknown): string {
  return typeof v === 'string' ? v : `${path.split('.').pop()}${String(v)}`;
}

function* combinations(sizes: number[]): Generator<number[]> {
  const idx = sizes.map(() => 0);
  for (;;) {
    yield [...idx];
    let i = sizes.length - 1;
    while (i >= 0 && ++idx[i] === sizes[i]) idx[i--] = 0;
    if (i < 0) return;
  }
}

function setAtPath(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  node[path[path.length - 1]] = value;
}

/**
 * The text of an experiment file's bytes: UTF-8, a leading byte order mark dropped. Invalid UTF-8 is
 * an issue at the first bad byte (line, column) rather than U+FFFD characters silently in the config.
 */
export function decodeExperimentBytes(bytes: Uint8Array): { text: string; issue?: undefined } | { text?: undefined; issue: ConfigIssue } {
  const bad = firstInvalidUtf8(bytes);
  if (bad === undefined) return { text: new TextDecoder('utf-8', { ignoreBOM: false }).decode(bytes) };
  const before = new TextDecoder('utf-8', { ignoreBOM: false }).decode(bytes.subarray(0, bad));
  const { line, column } = lineColumnAt(before, before.length);
  const hex = Array.from(bytes.subarray(bad, Math.min(bytes.length, bad + 4)), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return {
    issue: {
      severity: 'error',
      path: '',
      message: `not valid UTF-8 at byte ${bad} (bytes ${hex}): save the file as UTF-8`,
      offset: before.length,
      length: 1,
      line,
      column,
    },
  };
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence, or undefined. */
export function firstInvalidUtf8(b: Uint8Array): number | undefined {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0; // no overlong forms
      if (c === 0xed) hi = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    if (b[i + 1] === undefined || b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k <= n; k++) if (b[i + k] === undefined || b[i + k] < 0x80 || b[i + k] > 0xbf) return i;
    i += n + 1;
  }
  return undefined;
}
