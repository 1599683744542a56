// Parameter-count hovers (vscode side): finds what is under the cursor and the model it belongs to, then
// calls the pure text builders in insight/hoverText.ts. Reads model config.json files from disk (the host may;
// src/formats stays pure). A causal-lm experiment's hover adds the run's memory estimate; its config.json
// is read asynchronously and cached by mtime (src/io/modelConfigCache.ts), so hovering never blocks the host.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as jsonc from 'jsonc-parser';
import * as vscode from 'vscode';
import YAML from 'yaml';
import { findSweepAxes, pathAtOffset, resolveConfigDefaults } from '../formats/experimentConfig';
import type { ExperimentConfig, ScalingMode } from '../formats/experimentTypes';
import { parseHfConfig } from '../formats/hfConfig';
import { PEFT_DEFAULT_TARGETS } from '../formats/memoryEstimate';
import { matchTargetModules, moduleHyper, parsePeftConfig } from '../formats/peftConfig';
import { loraScale } from '../shared/loraScale';
import { Disposable } from '../util/disposable';
import { linearHoverText, loraLinearHoverText, memoryHoverText, modelHoverText, noModelHoverText } from '../insight/hoverText';
import { defaultBackendAssumption, memorySummaryOf } from '../insight/runMemory';
import { readModelConfigCached, weightFileBytes } from '../io/modelConfigCache';
import { experimentModelShape, fileModelShape, hfModelShape, leafName, type ModelShape } from '../insight/modelShapes';
import { boolArg, callAt, intArg, linearsInFile, numArg } from '../insight/pythonCalls';
import { configKeyDoc, isMlxConfig } from '../insight/configKeyDocs';

/** Where each hover applies: experiment configs, PEFT adapter configs, axolotl / mlx-lm YAML, Python. */
export const HOVER_SELECTOR: vscode.DocumentSelector = [
  { pattern: '**/*.lora.{json,yaml,yml}' },
  { pattern: '**/adapter_config.json' },
  { language: 'yaml' },
  { language: 'python' },
  { pattern: '**/*.py' },
];

/** A model config.json as a ModelShape, or why not. */
function loadModelShape(configJson: string): ModelShape | string {
  try {
    const text = fs.readFileSync(configJson, 'utf8');
    return hfModelShape(parseHfConfig(text, configJson), path.basename(path.dirname(configJson)) + '/config.json');
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * A model's config.json "found nearby": the named folder if given, else the file's folder and its parents
 * up to the workspace folder, each checked for config.json directly and one level down.
 */
export function findModelConfig(fromFile: string, named?: string | null): string | undefined {
  const dir = path.dirname(fromFile);
  if (named) {
    for (const base of [dir, ...(vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath)]) {
      const p = path.resolve(base, named, 'config.json');
      if (fs.existsSync(p)) return p;
    }
  }
  const root = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(fromFile))?.uri.fsPath ?? path.parse(dir).root;
  for (let d = dir; ; d = path.dirname(d)) {
    const direct = path.join(d, 'config.json');
    if (fs.existsSync(direct) && isModelConfig(direct)) return direct;
    const below = findBelow(d, 2);
    if (below) return below;
    if (d === root || path.dirname(d) === d || !d.startsWith(root)) return undefined;
  }
}

/** config.json of a model in a subfolder of `dir`, up to `depth` levels down (models/llama/config.json). */
function findBelow(dir: string, depth: number): string | undefined {
  if (depth === 0) return undefined;
  let subdirs: string[];
  try {
    subdirs = fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules' && e.name !== 'lora-runs')
      .map((e) => path.join(dir, e.name))
      .sort();
  } catch {
    return undefined;
  }
  for (const sub of subdirs) {
    const p = path.join(sub, 'config.json');
    if (fs.existsSync(p) && isModelConfig(p)) return p;
  }
  for (const sub of subdirs) {
    const p = findBelow(sub, depth - 1);
    if (p) return p;
  }
  return undefined;
}

function isModelConfig(p: string): boolean {
  try {
    const raw = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
    return typeof raw.model_type === 'string';
  } catch {
    return false;
  }
}

function md(text: string, range?: vscode.Range): vscode.Hover {
  const s = new vscode.MarkdownString(text);
  s.isTrusted = false;
  s.supportHtml = false;
  return new vscode.Hover(s, range);
}

export class ParamHoverProvider extends Disposable implements vscode.HoverProvider {
  constructor() {
    super();
    this._register(vscode.languages.registerHoverProvider(HOVER_SELECTOR, this));
  }

  provideHover(doc: vscode.TextDocument, pos: vscode.Position): vscode.ProviderResult<vscode.Hover> {
    const file = doc.uri.fsPath;
    const base = path.basename(file);
    const text = doc.getText();
    const offset = doc.offsetAt(pos);
    try {
      // The experiment hover reads config.json asynchronously: its failures end the same way.
      if (/\.lora\.(json|ya?ml)$/i.test(base)) return this.experimentHover(doc, text, offset).catch(() => undefined);
      if (base === 'adapter_config.json') return this.peftHover(doc, text, offset);
      if (doc.languageId === 'python' || base.endsWith('.py')) return this.pythonHover(doc, text, offset);
      if (/\.ya?ml$/i.test(base)) return this.trainerYamlHover(doc, text, offset);
    } catch {
      // A half-typed file: no hover rather than an error popup.
    }
    return undefined;
  }

  private async experimentHover(doc: vscode.TextDocument, text: string, offset: number): Promise<vscode.Hover | undefined> {
    const p = pathAtOffset(text, doc.fileName, offset);
    if (p.length === 0) return undefined;
    const top = p[0];
    const key = String(p[p.length - 1]);
    // What changes the parameter counts, and (causal-lm) what changes the memory estimate.
    const memoryKey = (top === 'training' && ['batchSize', 'gradientCheckpointing'].includes(String(p[1]))) || (top === 'optimizer' && p[1] === 'name');
    const interesting = (top === 'lora' && (p.length === 1 || ['r', 'alpha', 'scaling', 'targetModules', 'trainBias', 'useDora'].includes(String(p[1])))) || top === 'model' || top === 'kind' || memoryKey;
    if (!interesting) return undefined;
    const raw = (/\.ya?ml$/i.test(doc.fileName) ? YAML.parse(text) : jsonc.parse(text)) as Record<string, unknown> | null;
    // A sweep (a field given as a list): the counts of the run whose value is under the cursor, else the first.
    for (const axis of findSweepAxes(raw)) {
      const under = axis.path.every((seg, i) => p[i] === seg) ? p[axis.path.length] : undefined;
      const value = axis.values[typeof under === 'number' && under < axis.values.length ? under : 0];
      let node = raw as Record<string | number, unknown>;
      for (const seg of axis.path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
      node[axis.path[axis.path.length - 1]] = value;
    }
    const config: ExperimentConfig = resolveConfigDefaults(raw ?? {}, doc.fileName);
    const lora = config.lora;
    let shape: ModelShape | string | undefined = experimentModelShape(config);
    let targets = lora.targetModules;
    let memory: string | undefined;
    if (config.model.kind === 'causal-lm') {
      const cfg = findModelConfig(doc.fileName, config.model.modelPath);
      if (!cfg) shape = `no config.json found at ${config.model.modelPath}`;
      else {
        const hf = await readModelConfigCached(cfg).catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
        shape = typeof hf === 'string' ? hf : hfModelShape(hf, path.basename(path.dirname(cfg)) + '/config.json');
        if (typeof hf !== 'string') {
          const stored = await weightFileBytes(path.dirname(cfg));
          memory = memoryHoverText(memorySummaryOf(config, hf, defaultBackendAssumption(), { machineBytes: os.totalmem(), storedWeightBytes: stored }));
        }
      }
      if (typeof shape !== 'string' && targets.length === 0) {
        const mt = shape.linears[0]?.name.startsWith('transformer.') ? 'gpt2' : 'llama';
        targets = PEFT_DEFAULT_TARGETS[mt];
      }
    } else if (memoryKey) return undefined;
    if (typeof shape === 'string' || shape === undefined) return md(noModelHoverText(lora.r, lora.alpha, lora.scaling, shape ?? 'unknown model'));
    // Over a layer name in targetModules (or the model itself): that layer first.
    let focus: string | undefined;
    if (top === 'lora' && p[1] === 'targetModules' && typeof p[2] === 'number') focus = targets[p[2]];
    else if (top === 'lora' && p[1] === 'targetModules') focus = undefined;
    else if (config.model.kind === 'low-rank-recovery') focus = 'linear'; // the model is that one layer
    const firstMatch = focus ? shape.linears.find((l) => leafName(l.name) === focus) : undefined;
    const title = top === 'lora' ? (p[1] === 'targetModules' ? 'target modules' : String(p[1] ?? 'lora')) : key;
    return md(
      modelHoverText({
        shape,
        r: lora.r,
        alpha: lora.alpha,
        scaling: lora.scaling,
        targets,
        trainBias: lora.trainBias,
        convention: lora.trainBias ? 'seed' : 'peft',
        focus: firstMatch?.name,
        title,
        useDora: lora.useDora === true,
        memory,
      }),
    );
  }

  private peftHover(doc: vscode.TextDocument, text: string, offset: number): vscode.Hover | undefined {
    const loc = jsonc.getLocation(text, offset);
    const key = String(loc.path[0] ?? '');
    const raw = jsonc.parse(text) as unknown;
    // mlx-lm writes adapter_config.json too (lora_parameters, num_layers): its own keys and counts.
    if (isMlxConfig(raw)) return this.mlxHover(doc, raw as Record<string, unknown>, loc.path);
    // Each key's own line first; the parameter counts follow for the keys that change them.
    const keyDoc = configKeyDoc(loc.path.slice(0, 1), false);
    if (!['r', 'lora_alpha', 'target_modules', 'use_rslora', 'rank_pattern', 'alpha_pattern', 'base_model_name_or_path', 'bias', 'modules_to_save', 'use_dora'].includes(key)) return keyDoc ? md(keyDoc) : undefined;
    const counts = this.peftCounts(doc, text, key, loc.path);
    return md(keyDoc ? `${keyDoc}\n\n---\n\n${counts}` : counts);
  }

  private peftCounts(doc: vscode.TextDocument, text: string, key: string, locPath: jsonc.JSONPath): string {
    const loc = { path: locPath };
    const { config } = parsePeftConfig(text, doc.fileName);
    const scaling: ScalingMode = config.useRslora ? 'rslora' : 'standard';
    const cfgPath = findModelConfig(doc.fileName, config.baseModelNameOrPath);
    const shape = cfgPath ? loadModelShape(cfgPath) : `base model "${config.baseModelNameOrPath ?? '?'}" has no config.json in the workspace`;
    if (typeof shape === 'string') return noModelHoverText(config.r, config.loraAlpha, scaling, shape);
    const paths = shape.linears.map((l) => l.name);
    const adaptedNames = new Set(matchTargetModules(config, paths));
    const adapted = shape.linears.filter((l) => adaptedNames.has(l.name));
    let focus: string | undefined;
    if (key === 'target_modules' && typeof loc.path[1] === 'number' && Array.isArray(config.targetModules)) focus = adapted.find((l) => leafName(l.name) === config.targetModules![loc.path[1] as number])?.name;
    const targets = Array.isArray(config.targetModules) ? config.targetModules : [String(config.targetModules)];
    return modelHoverText({
        shape,
        r: config.r,
        alpha: config.loraAlpha,
        scaling,
        targets,
        adapted,
        rankOf: (l) => moduleHyper(config, l.name).r,
        trainBias: config.bias !== 'none',
        convention: 'peft',
        focus,
        title: key,
        useDora: config.useDora,
      });
  }

  private pythonHover(doc: vscode.TextDocument, text: string, offset: number): vscode.Hover | undefined {
    const call = callAt(text, offset);
    if (!call) return undefined;
    const range = new vscode.Range(doc.positionAt(call.start), doc.positionAt(call.end));
    switch (call.name) {
      case 'Linear': {
        const d = intArg(call, 0, 'in_features');
        const k = intArg(call, 1, 'out_features');
        if (!d || !k) return undefined;
        return md(linearHoverText(d, k, boolArg(call, 2, 'bias') ?? true), range);
      }
      case 'LoRALinear': {
        const d = intArg(call, 0, 'in_features');
        const k = intArg(call, 1, 'out_features');
        const r = intArg(call, 2, 'r') ?? intArg(call, 2, 'rank');
        if (!d || !k || !r) return undefined;
        return md(loraLinearHoverText(d, k, r), range);
      }
      case 'LoraConfig': {
        const r = intArg(call, -1, 'r') ?? 8; // PEFT's default r
        const alpha = numArg(call, -1, 'lora_alpha') ?? 8; // PEFT's default lora_alpha
        const scaling: ScalingMode = boolArg(call, -1, 'use_rslora') ? 'rslora' : 'standard';
        const tm = call.kwargs.target_modules;
        // A model defined in this file (nn.Linear layers with literal sizes) is the one LoraConfig is for
        // when its target_modules name those layers (or are not given); else the config.json nearby.
        const fileLinears = linearsInFile(text);
        const fileTargets = Array.isArray(tm) ? tm : tm === 'all-linear' || tm === undefined ? fileLinears.map((l) => l.name) : [];
        const inFile = fileLinears.filter((l) => fileTargets.includes(leafName(l.name)));
        if (inFile.length && !/\bfrom_pretrained\s*\(/.test(text)) {
          const shape = fileModelShape(fileLinears);
          const bias = call.kwargs.bias;
          const note = tm === undefined ? '\n\n(`target_modules` is not given: PEFT needs it for a custom model; the counts assume every nn.Linear of this file.)' : '';
          return md(modelHoverText({ shape, r, alpha, scaling, targets: fileTargets, trainBias: bias === 'all' || bias === 'lora_only', convention: 'peft', title: 'LoraConfig', useDora: boolArg(call, -1, 'use_dora') === true }) + note, range);
        }
        const cfgPath = findModelConfig(doc.fileName);
        const shape = cfgPath ? loadModelShape(cfgPath) : 'no config.json of a model found near this file';
        if (typeof shape === 'string') return md(noModelHoverText(r, alpha, scaling, shape), range);
        const mt = shape.linears[0]?.name.startsWith('transformer.') ? 'gpt2' : 'llama';
        const targets = Array.isArray(tm) ? tm : tm === 'all-linear' ? [...new Set(shape.linears.map((l) => leafName(l.name)))] : PEFT_DEFAULT_TARGETS[mt];
        const bias = call.kwargs.bias;
        return md(modelHoverText({ shape, r, alpha, scaling, targets, trainBias: bias === 'all' || bias === 'lora_only', convention: 'peft', title: 'LoraConfig', useDora: boolArg(call, -1, 'use_dora') === true }), range);
      }
      default:
        return undefined;
    }
  }

  /** axolotl (lora_r, lora_alpha, lora_target_modules, base_model) and mlx-lm (lora_parameters: rank, scale). */
  private trainerYamlHover(doc: vscode.TextDocument, text: string, offset: number): vscode.Hover | undefined {
    const raw = YAML.parse(text) as Record<string, unknown> | null;
    if (!raw || typeof raw !== 'object') return undefined;
    const p = pathAtOffset(text, doc.fileName, offset).map(String);
    if (typeof raw.lora_r === 'number' && p[0]?.startsWith('lora_')) {
      const r = raw.lora_r;
      const alpha = typeof raw.lora_alpha === 'number' ? raw.lora_alpha : r;
      const scaling: ScalingMode = raw.peft_use_rslora === true ? 'rslora' : 'standard';
      const cfgPath = findModelConfig(doc.fileName, typeof raw.base_model === 'string' ? raw.base_model : undefined);
      const shape = cfgPath ? loadModelShape(cfgPath) : `base_model "${String(raw.base_model ?? '?')}" has no config.json in the workspace`;
      if (typeof shape === 'string') return md(noModelHoverText(r, alpha, scaling, shape) + '\n\n(axolotl config)');
      const targets = raw.lora_target_linear === true ? [...new Set(shape.linears.map((l) => leafName(l.name)))] : Array.isArray(raw.lora_target_modules) ? raw.lora_target_modules.map(String) : ['q_proj', 'v_proj'];
      return md(modelHoverText({ shape, r, alpha, scaling, targets, trainBias: false, convention: 'peft', title: `axolotl ${p[0]}`, useDora: raw.peft_use_dora === true }));
    }
    if (isMlxConfig(raw)) return this.mlxHover(doc, raw, p);
    return undefined;
  }

  /** mlx-lm configs (training YAML or adapter_config.json): the key's line, then counts for the LoRA keys. */
  private mlxHover(doc: vscode.TextDocument, raw: Record<string, unknown>, keyPath: readonly (string | number)[]): vscode.Hover | undefined {
    const keyDoc = configKeyDoc(keyPath, true);
    const top = String(keyPath[0] ?? '');
    const countsFor = top === 'lora_parameters' || top === 'num_layers' || top === 'lora_layers' || top === 'rank' || top === 'scale';
    if (!countsFor) return keyDoc ? md(keyDoc) : undefined;
    const mlx = (typeof raw.lora_parameters === 'object' && raw.lora_parameters !== null ? raw.lora_parameters : raw) as Record<string, unknown>;
    const r = typeof mlx.rank === 'number' ? mlx.rank : 8;
    const scale = typeof mlx.scale === 'number' ? mlx.scale : typeof mlx.alpha === 'number' ? loraScale(mlx.alpha, r, 'standard') : 20;
    const modelRef = typeof raw.model === 'string' ? raw.model : typeof raw.base_model === 'string' ? raw.base_model : undefined;
    const cfgPath = findModelConfig(doc.fileName, modelRef);
    const shape = cfgPath ? loadModelShape(cfgPath) : `model "${String(modelRef ?? '?')}" has no config.json in the workspace`;
    // mlx-lm's scale is absolute (s itself, not α): express it as α = s·r under α/r.
    const note = `\n\n(mlx-lm config: \`scale\` ${scale} is the absolute scale s on B·A, not α)`;
    const head = keyDoc ? `${keyDoc}\n\n---\n\n` : '';
    if (typeof shape === 'string') return md(head + noModelHoverText(r, scale * r, 'standard', shape) + note);
    const keys = Array.isArray(mlx.keys) ? mlx.keys.map((k) => String(k).split('.').pop()!) : ['q_proj', 'v_proj'];
    const numLayers = typeof raw.num_layers === 'number' ? raw.num_layers : typeof raw.lora_layers === 'number' ? raw.lora_layers : 16;
    const layerCount = new Set(shape.linears.map((l) => /\.(\d+)\./.exec(l.name)?.[1])).size;
    const first = numLayers < 0 ? 0 : Math.max(0, layerCount - numLayers); // mlx-lm adapts the last num_layers layers
    const adapted = shape.linears.filter((l) => keys.includes(leafName(l.name)) && Number(/\.(\d+)\./.exec(l.name)?.[1] ?? 0) >= first);
    return md(head + modelHoverText({ shape, r, alpha: scale * r, scaling: 'standard', targets: keys, adapted, trainBias: false, convention: 'peft', title: `mlx-lm, last ${numLayers} layers` }) + note);
  }
}
