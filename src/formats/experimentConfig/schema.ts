// Schema walking: what the JSON Schema (the one the editor uses) says at a path, for hovers,
// completions and sweeps; and its ajv check, with each error worded for people (spelling hints for
// unknown keys and enum values).
import Ajv, { type ErrorObject } from 'ajv';
import { EXPERIMENT_SCHEMA } from '../experimentSchema';
import { closestName } from './spelling';
import { formatPath, type PathSegments } from './text';
import type { ExperimentKind } from '../experimentTypes';

export const EXPERIMENT_KINDS: readonly ExperimentKind[] = ['low-rank-recovery', 'attention-adaptation', 'causal-lm'];

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

// Validation.

let validator: ReturnType<Ajv['compile']> | undefined;

export function getValidator() {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' }); // VS Code's hover text, an annotation only
    validator = ajv.compile(EXPERIMENT_SCHEMA);
  }
  return validator;
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

export interface RawIssue {
  severity: 'error' | 'warning';
  path: (string | number)[];
  message: string;
  /** Point at the key (unknown keys) or the parent (missing keys) instead of the value. */
  anchor?: 'key' | 'parent';
}

export function schemaIssue(e: ErrorObject, data: unknown): RawIssue | undefined {
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
