// Recognise an adapter's layout from its tensor names (header only) and group tensors into modules with
// rank, alpha and scale. Formats: PEFT, diffusers/ai-toolkit PEFT-style keys, kohya / Civitai
// (lora_unet_…, lora_te…), LyCORIS (LoCon, LoHa, LoKr, DoRA scale), mlx-lm, loralib, legacy diffusers
// attention processors and cloneofsimo's lora_diffusion. Pure: names, dtypes, shapes in.
import { moduleHyper, resolvePatternSemantics, type PatternSemantics, type PeftLoraConfig } from '../peftConfig';
import { peftScale } from '../../shared/loraScale';

export type AdapterFormat =
  | 'peft'
  | 'diffusers-peft'
  | 'kohya'
  | 'lycoris'
  | 'mlx'
  | 'loralib'
  | 'diffusers-legacy'
  | 'cloneofsimo'
  | 'unknown-lora'
  | 'not-an-adapter';

export const FORMAT_LABEL: Record<AdapterFormat, string> = {
  peft: 'Hugging Face PEFT LoRA',
  'diffusers-peft': 'PEFT-style LoRA keys without the PEFT wrapper (diffusers / ai-toolkit)',
  kohya: 'kohya / Civitai LoRA',
  lycoris: 'LyCORIS (kohya naming)',
  mlx: 'mlx-lm LoRA',
  loralib: 'microsoft/LoRA (loralib)',
  'diffusers-legacy': 'legacy diffusers attention-processor LoRA',
  cloneofsimo: 'cloneofsimo lora_diffusion',
  'unknown-lora': 'unknown LoRA layout',
  'not-an-adapter': 'not a LoRA adapter',
};

export type ModuleKind = 'lora' | 'locon' | 'loha' | 'lokr';

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
}

export interface AdapterModule {
  /** The module's key prefix in the file (PEFT: the model path without "base_model.model."). */
  name: string;
  kind: ModuleKind;
  /** Tensors by role: down/up/mid (A/B), hada_w1_a…, lokr_w1…, alpha, magnitude, dora_scale. */
  tensors: Record<string, TensorInfo>;
  rank: number;
  /** Undefined when the file does not say (and it was not read). */
  alpha?: number;
  alphaSource: 'tensor' | 'config' | 'metadata' | 'rank' | 'not-read' | 'none';
  /** Multiplies the low-rank product: alpha/r (kohya, PEFT), alpha/√r (rsLoRA), mlx's absolute scale, or 1. */
  scale: number;
  /** Shape of ΔW: [out, in] or [out, in, kh, kw] (LyCORIS conv factors may flatten to [out, in·kh·kw]). */
  deltaShape: number[];
  paramCount: number;
  dtype: string;
  /** ‖ΔW‖_F (scale included), when the tensor values were read. */
  deltaNorm?: number;
  /**
   * PEFT LoRA on an embedding table (lora_embedding_A [r, num_embeddings], lora_embedding_B [dim, r]):
   * ΔW = s·(B·A)ᵀ in the table's layout, so deltaShape is [num_embeddings, embedding_dim].
   */
  embedding?: boolean;
}

export interface AdapterLayout {
  format: AdapterFormat;
  modules: AdapterModule[];
  /** Tensors that are not LoRA factors: modules_to_save copies, biases, textual-inversion embeddings. */
  extras: TensorInfo[];
  warnings: string[];
}

export interface LayoutInput {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Parsed adapter_config.json: PEFT's (typed) or any other JSON (mlx-lm). */
  peftConfig?: PeftLoraConfig;
  otherConfig?: Record<string, unknown>;
  /** Value of a scalar tensor (kohya `.alpha`), when the caller has the bytes. */
  scalar?(name: string): number | undefined;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

const KOHYA_PREFIX = /^lora_(unet|te\d?|transformer|text_encoder\w*)_/;
const KOHYA_SUFFIX = /\.(lora_down\.weight|lora_up\.weight|lora_mid\.weight|alpha|dora_scale|hada_w1_a|hada_w1_b|hada_w2_a|hada_w2_b|hada_t1|hada_t2|lokr_w1|lokr_w1_a|lokr_w1_b|lokr_w2|lokr_w2_a|lokr_w2_b|lokr_t2|diff|diff_b|w_norm|b_norm)$/;
const LYCORIS_ROLE = /^(hada_|lokr_)/;
const PEFT_SUFFIX = /\.(lora_A|lora_B)(\.default)?\.weight$|\.(lora_magnitude_vector|lora_embedding_A|lora_embedding_B)(\.default)?(\.weight)?$/;
const MLX_SUFFIX = /\.(lora_a|lora_b)$/;
const LORALIB_SUFFIX = /\.(lora_A|lora_B)$/;
const LEGACY_DIFFUSERS = /(_lora|\.lora_linear_layer)\.(down|up)\.weight$/;
const CLONEOFSIMO = /^(.+):(\d+):(down|up)$/;

/** Which layout the tensor names follow. */
export function detectFormat(names: string[], metadata: Record<string, string> = {}): AdapterFormat {
  if (names.some((n) => KOHYA_PREFIX.test(n) && KOHYA_SUFFIX.test(n))) {
    const lyco = names.some((n) => LYCORIS_ROLE.test(n.slice(n.lastIndexOf('.') + 1)) || n.endsWith('.lora_mid.weight') || n.endsWith('.dora_scale'));
    return lyco || /lycoris/i.test(metadata.ss_network_module ?? '') ? 'lycoris' : 'kohya';
  }
  if (names.some((n) => PEFT_SUFFIX.test(n))) return names.some((n) => n.startsWith('base_model.model.')) ? 'peft' : 'diffusers-peft';
  if (names.some((n) => MLX_SUFFIX.test(n))) return 'mlx';
  if (names.some((n) => LORALIB_SUFFIX.test(n))) return 'loralib';
  if (names.some((n) => LEGACY_DIFFUSERS.test(n))) return 'diffusers-legacy';
  if (names.some((n) => CLONEOFSIMO.test(n))) return 'cloneofsimo';
  // Pairs like w_a_000 [r, d] / w_b_000 [d, r] (custom training scripts): LoRA, but layers unknown.
  if (names.some((n) => /(^|[._])(w_a|lora_a|a)[._]?\d*$/i.test(n)) && names.some((n) => /(^|[._])(w_b|lora_b|b)[._]?\d*$/i.test(n))) return 'unknown-lora';
  return 'not-an-adapter';
}

interface Group {
  name: string;
  roles: Record<string, TensorInfo>;
}

function group(tensors: TensorInfo[], split: (n: string) => [string, string] | undefined): { groups: Group[]; extras: TensorInfo[] } {
  const map = new Map<string, Group>();
  const extras: TensorInfo[] = [];
  for (const t of tensors) {
    const s = split(t.name);
    if (!s) {
      extras.push(t);
      continue;
    }
    const [name, role] = s;
    let g = map.get(name);
    if (!g) map.set(name, (g = { name, roles: {} }));
    g.roles[role] = t;
  }
  return { groups: [...map.values()], extras };
}

function kronShape(a: number[], b: number[]): number[] {
  return a.map((d, i) => d * (b[i] ?? 1)).concat(b.slice(a.length));
}

/** Build modules and warnings for a detected format. */
export function describeLayout(input: LayoutInput): AdapterLayout {
  const names = input.tensors.map((t) => t.name);
  const format = detectFormat(names, input.metadata);
  const warnings: string[] = [];
  const modules: AdapterModule[] = [];
  let extras: TensorInfo[] = [];
  const meta = input.metadata;

  const finish = (g: Group, kind: ModuleKind, rank: number, deltaShape: number[], alpha: number | undefined, alphaSource: AdapterModule['alphaSource'], scale: number) => {
    const factors = Object.entries(g.roles).filter(([r]) => r !== 'alpha');
    modules.push({
      name: g.name,
      kind,
      tensors: g.roles,
      rank,
      alpha,
      alphaSource,
      scale,
      deltaShape,
      paramCount: factors.reduce((s, [, t]) => s + numel(t.shape), 0),
      dtype: factors[0]?.[1].dtype ?? 'F32',
    });
  };

  /**
   * A low-rank pair whose factors are both present and agree on the rank; otherwise a warning, and its
   * tensors are listed as other tensors (a ΔW from mismatched factors would read past their data).
   */
  const pairOk = (g: Group, down: string, up: string, downRank: number, upRank: number): boolean => {
    const d = g.roles[down];
    const u = g.roles[up];
    if (!d || !u) {
      warnings.push(`${g.name}: has ${d ? down : up} but no ${d ? up : down}; not counted as a module`);
    } else if (d.shape[downRank] !== u.shape[upRank]) {
      warnings.push(`${g.name}: ${up} ${JSON.stringify(u.shape)} does not match ${down} ${JSON.stringify(d.shape)} (rank ${d.shape[downRank]}); not counted as a module`);
    } else {
      return true;
    }
    extras.push(...Object.values(g.roles));
    return false;
  };

  switch (format) {
    case 'kohya':
    case 'lycoris': {
      const netAlpha = meta.ss_network_alpha !== undefined ? Number(meta.ss_network_alpha) : undefined;
      const g = group(input.tensors, (n) => {
        const m = /^(.*)\.(lora_down\.weight|lora_up\.weight|lora_mid\.weight|alpha|dora_scale|hada_\w+|lokr_\w+|diff|diff_b|w_norm|b_norm)$/.exec(n);
        return m && KOHYA_PREFIX.test(m[1]) ? [m[1], m[2].replace(/\.weight$/, '')] : undefined;
      });
      extras = g.extras;
      for (const grp of g.groups) {
        const r = grp.roles;
        let alpha: number | undefined;
        let alphaSource: AdapterModule['alphaSource'] = 'none';
        if (r.alpha) {
          const v = input.scalar?.(r.alpha.name);
          if (v === undefined) alphaSource = 'not-read';
          else {
            alpha = v;
            alphaSource = 'tensor';
          }
        }
        const scaleFrom = (rank: number) => {
          // kohya: alpha missing or 0 means alpha = r (scale 1).
          if (alphaSource === 'not-read' && netAlpha !== undefined && Number.isFinite(netAlpha) && netAlpha > 0) {
            alpha = netAlpha;
            alphaSource = 'metadata';
          }
          if (alpha === undefined || alpha === 0) {
            if (alphaSource !== 'not-read') {
              alpha = rank;
              alphaSource = 'rank';
            }
          }
          return alpha === undefined ? 1 : peftScale(alpha, rank, false);
        };
        if (r.lora_down || r.lora_up) {
          if (!pairOk(grp, 'lora_down', 'lora_up', 0, 1)) continue;
          const down = r.lora_down.shape; // [r, in(, kh, kw)]
          const up = r.lora_up.shape; // [out, r(, 1, 1)]
          const rank = down[0];
          const kernel = r.lora_mid ? r.lora_mid.shape.slice(2) : down.slice(2);
          const delta = [up[0], r.lora_mid ? down[1] : down[1], ...kernel];
          finish(grp, r.lora_mid ? 'locon' : 'lora', rank, delta, undefined, alphaSource, 1);
          const m = modules[modules.length - 1];
          m.scale = scaleFrom(rank);
          m.alpha = alpha;
          m.alphaSource = alphaSource;
        } else if (r.hada_w1_a && r.hada_w1_b && r.hada_w2_a && r.hada_w2_b) {
          const rank = r.hada_w1_b.shape[0];
          const delta = r.hada_t1 ? [r.hada_w1_a.shape[1], r.hada_w1_b.shape[1], ...r.hada_t1.shape.slice(2)] : [r.hada_w1_a.shape[0], r.hada_w1_b.shape[1]];
          finish(grp, 'loha', rank, delta, undefined, alphaSource, 1);
          const m = modules[modules.length - 1];
          m.scale = scaleFrom(rank);
          m.alpha = alpha;
          m.alphaSource = alphaSource;
        } else if ((r.lokr_w1 || (r.lokr_w1_a && r.lokr_w1_b)) && (r.lokr_w2 || (r.lokr_w2_a && r.lokr_w2_b))) {
          const w1 = r.lokr_w1 ? r.lokr_w1.shape : [r.lokr_w1_a.shape[0], r.lokr_w1_b.shape[1]];
          // Tucker w2 (lokr_t2 [r, r, kh, kw]): lokr_w2_a [r, out_k], lokr_w2_b [r, in_n].
          const tucker = !r.lokr_w2 && !!r.lokr_t2;
          const w2 = r.lokr_w2 ? r.lokr_w2.shape : tucker ? [r.lokr_w2_a.shape[1], r.lokr_w2_b.shape[1], ...r.lokr_t2.shape.slice(2)] : [r.lokr_w2_a.shape[0], r.lokr_w2_b.shape[1]];
          const decomposed = !r.lokr_w1 || !r.lokr_w2;
          const rank = r.lokr_w1_a ? r.lokr_w1_a.shape[1] : r.lokr_w2_a ? r.lokr_w2_a.shape[tucker ? 0 : 1] : Math.min(...w2.slice(0, 2));
          finish(grp, 'lokr', rank, kronShape(w1, w2), undefined, alphaSource, 1);
          const m = modules[modules.length - 1];
          // LyCORIS LoKr: with both Kronecker factors full, alpha is ignored (scale 1).
          m.scale = decomposed ? scaleFrom(rank) : 1;
          m.alpha = alpha;
          m.alphaSource = alphaSource;
        } else if (r.diff || r.w_norm || r.b_norm || r.diff_b) {
          extras.push(...Object.values(r));
        } else {
          warnings.push(`${grp.name}: incomplete module (has ${Object.keys(r).join(', ')})`);
          extras.push(...Object.values(r));
        }
        if (r.dora_scale) warnings.push(`${grp.name}: DoRA (dora_scale) rescales W + ΔW per output feature; the exact ΔW needs the base weight`);
      }
      if (modules.some((m) => m.alphaSource === 'not-read')) warnings.push('alpha tensors were not read (header-only); scales shown as 1 until the file is read');
      break;
    }
    case 'peft':
    case 'diffusers-peft': {
      const g = group(input.tensors, (n) => {
        const m =
          /^(.*)\.(lora_A|lora_B)(?:\.default)?\.weight$/.exec(n) ?? /^(.*)\.(lora_magnitude_vector|lora_embedding_A|lora_embedding_B)(?:\.default)?(?:\.weight)?$/.exec(n) ?? /^(.*)\.(alpha)$/.exec(n);
        if (!m) return undefined;
        return [m[1].replace(/^base_model\.model\./, ''), m[2]];
      });
      extras = g.extras;
      const cfg = input.peftConfig;
      let semantics: PatternSemantics | undefined;
      if (cfg) {
        // rank_pattern keys changed meaning in PEFT 0.15: the tensors' ranks say which the adapter was saved with.
        const ranks = g.groups.flatMap((grp): [string, number][] => {
          const a = grp.roles.lora_A ?? grp.roles.lora_embedding_A;
          return a ? [[grp.name, a.shape[0]]] : [];
        });
        try {
          const resolved = resolvePatternSemantics(cfg, ranks);
          semantics = resolved.semantics;
          warnings.push(...resolved.notes);
        } catch (e) {
          warnings.push((e as Error).message);
        }
      }
      for (const grp of g.groups) {
        // PEFT's lora.Embedding: lora_embedding_A [r, num_embeddings], lora_embedding_B [embedding_dim, r].
        const embedding = !!(grp.roles.lora_embedding_A || grp.roles.lora_embedding_B);
        if (embedding ? !pairOk(grp, 'lora_embedding_A', 'lora_embedding_B', 0, 1) : !pairOk(grp, 'lora_A', 'lora_B', 0, 1)) continue;
        const A = embedding ? grp.roles.lora_embedding_A : grp.roles.lora_A;
        const B = embedding ? grp.roles.lora_embedding_B : grp.roles.lora_B;
        const rank = A.shape[0];
        let alpha: number | undefined;
        let scale = 1;
        let alphaSource: AdapterModule['alphaSource'] = 'none';
        if (cfg) {
          const h = moduleHyper(cfg, grp.name, semantics);
          alpha = h.alpha;
          alphaSource = 'config';
          scale = peftScale(h.alpha, rank, cfg.useRslora);
        } else if (grp.roles.alpha) {
          const v = input.scalar?.(grp.roles.alpha.name);
          alpha = v;
          alphaSource = v === undefined ? 'not-read' : 'tensor';
          scale = v === undefined || v === 0 ? 1 : v / rank;
        } else if (format === 'diffusers-peft') {
          alphaSource = 'none';
        }
        // An embedding's ΔW has the table's layout [num_embeddings, embedding_dim] = (s·B·A)ᵀ.
        finish(grp, 'lora', rank, embedding ? [A.shape[1], B.shape[0]] : [B.shape[0], A.shape[1], ...A.shape.slice(2)], alpha, alphaSource, scale);
        if (embedding) modules[modules.length - 1].embedding = true;
      }
      if (format === 'diffusers-peft' && !input.peftConfig && !modules.some((m) => m.alphaSource === 'tensor')) {
        warnings.push('no adapter_config.json and no alpha tensors: loaders use scale 1 (alpha = r)');
      }
      if (cfg) {
        if (cfg.useDora && !modules.some((m) => m.tensors.lora_magnitude_vector)) warnings.push('adapter_config.json has use_dora but the weights have no lora_magnitude_vector');
        if (!cfg.useDora && modules.some((m) => m.tensors.lora_magnitude_vector)) warnings.push('the weights have lora_magnitude_vector but adapter_config.json does not set use_dora');
        const targets = cfg.targetModules;
        if (Array.isArray(targets)) {
          const unmatched = targets.filter((t) => !modules.some((m) => m.name === t || m.name.endsWith(`.${t}`)));
          if (unmatched.length) warnings.push(`target_modules ${JSON.stringify(unmatched)} match no LoRA tensors in the weights`);
          const stray = modules.filter((m) => !targets.some((t) => m.name === t || m.name.endsWith(`.${t}`)));
          if (stray.length) warnings.push(`${stray.length} module(s) in the weights are not in target_modules, e.g. ${stray[0].name}`);
        }
      }
      break;
    }
    case 'mlx': {
      const g = group(input.tensors, (n) => {
        const m = /^(.*)\.(lora_a|lora_b)$/.exec(n);
        return m ? [m[1], m[2]] : undefined;
      });
      extras = g.extras;
      const lp = (input.otherConfig?.lora_parameters ?? {}) as Record<string, unknown>;
      const cfgScale = typeof lp.scale === 'number' ? lp.scale : undefined;
      const cfgAlpha = typeof lp.alpha === 'number' ? lp.alpha : undefined;
      const cfgRank = typeof lp.rank === 'number' ? lp.rank : undefined;
      if (!input.otherConfig) warnings.push('no adapter_config.json: mlx-lm stores the absolute scale there; using mlx-lm\'s default 20.0');
      for (const grp of g.groups) {
        if (!pairOk(grp, 'lora_a', 'lora_b', 1, 0)) continue;
        const a = grp.roles.lora_a; // [in, r]
        const b = grp.roles.lora_b; // [r, out]
        const rank = a.shape[1];
        if (cfgRank !== undefined && cfgRank !== rank) warnings.push(`${grp.name}: adapter_config.json rank ${cfgRank} but lora_a has rank ${rank}`);
        finish(grp, 'lora', rank, [b.shape[1], a.shape[0]], cfgAlpha, cfgAlpha === undefined ? 'none' : 'config', cfgScale ?? 20);
      }
      if (cfgScale !== undefined && cfgAlpha !== undefined && cfgRank && Math.abs(cfgScale - cfgAlpha / cfgRank) > 1e-9) {
        warnings.push(`mlx-lm uses the absolute scale ${cfgScale}; it disagrees with alpha / rank = ${cfgAlpha / cfgRank} (scale wins)`);
      }
      break;
    }
    case 'loralib': {
      const g = group(input.tensors, (n) => {
        const m = /^(.*)\.(lora_A|lora_B)$/.exec(n);
        return m ? [m[1], m[2]] : undefined;
      });
      extras = g.extras;
      for (const grp of g.groups) {
        if (!pairOk(grp, 'lora_A', 'lora_B', 0, 1)) continue;
        const A = grp.roles.lora_A;
        const B = grp.roles.lora_B;
        finish(grp, 'lora', A.shape[0], [B.shape[0], A.shape[1]], undefined, 'none', 1);
      }
      warnings.push('loralib keeps lora_alpha in the training code, not the file: scale shown as 1 (multiply by alpha / r)');
      break;
    }
    case 'diffusers-legacy': {
      const g = group(input.tensors, (n) => {
        const m = /^(.*(?:_lora|\.lora_linear_layer))\.(down|up)\.weight$/.exec(n);
        return m ? [m[1], m[2]] : undefined;
      });
      extras = g.extras;
      for (const grp of g.groups) {
        if (!pairOk(grp, 'down', 'up', 0, 1)) continue;
        const d = grp.roles.down;
        const u = grp.roles.up;
        finish(grp, 'lora', d.shape[0], [u.shape[0], d.shape[1]], undefined, 'none', 1);
      }
      warnings.push('legacy diffusers LoRA stores no alpha: scale 1 (network_alpha, when used in training, is lost)');
      break;
    }
    case 'cloneofsimo': {
      const g = group(input.tensors, (n) => {
        const m = CLONEOFSIMO.exec(n);
        return m ? [`${m[1]}:${m[2]}`, m[3]] : undefined;
      });
      extras = g.extras;
      for (const grp of g.groups) {
        if (!pairOk(grp, 'down', 'up', 0, 1)) continue;
        const d = grp.roles.down;
        const u = grp.roles.up;
        const metaRank = meta[`${grp.name}:rank`];
        if (metaRank !== undefined && Number(metaRank) !== d.shape[0]) warnings.push(`${grp.name}: metadata rank ${metaRank} but down has rank ${d.shape[0]}`);
        finish(grp, 'lora', d.shape[0], [u.shape[0], d.shape[1], ...d.shape.slice(2)], undefined, 'none', 1);
      }
      const embeds = extras.filter((t) => meta[t.name] === '<embed>');
      if (embeds.length) warnings.push(`${embeds.length} textual-inversion token embedding(s): ${embeds.map((t) => t.name).join(', ')}`);
      break;
    }
    case 'unknown-lora': {
      // Pair "…a…N" with "…b…N" ([r, in] and [out, r]) so rank, shapes and ΔW are still shown; the
      // layer each pair adapts is not named, so the modules keep the file's own names.
      const g = group(input.tensors, (n) => {
        const m = /^(.*?)(w_a|w_b|lora_a|lora_b|a|b)([._]?\d*)$/i.exec(n);
        return m ? [`${m[1]}${m[2].slice(0, -1)}*${m[3]}`, m[2].slice(-1).toLowerCase() === 'a' ? 'down' : 'up'] : undefined;
      });
      extras = g.extras;
      for (const grp of g.groups) {
        const d = grp.roles.down;
        const u = grp.roles.up;
        if (d && u && d.shape.length === 2 && u.shape.length === 2 && u.shape[1] === d.shape[0]) {
          finish(grp, 'lora', d.shape[0], [u.shape[0], d.shape[1]], undefined, 'none', 1);
        } else {
          extras.push(...Object.values(grp.roles));
        }
      }
      warnings.push('unknown LoRA layout: tensors look like low-rank factors, but which layer each belongs to is only known from the training code; scale shown as 1');
      break;
    }
    case 'not-an-adapter':
      extras = input.tensors;
      break;
  }
  modules.sort((a, b) => naturalCompare(a.name, b.name));
  return { format, modules, extras, warnings };
}

/** Layer order: "h.2" before "h.10" (digit runs compare as numbers, the rest by code point). */
export function naturalCompare(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x) && /^\d/.test(y);
    if (nx && Number(x) !== Number(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}
