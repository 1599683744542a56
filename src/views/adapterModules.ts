// Groups the tensor names of a safetensors header into LoRA modules and names the format, from the
// header alone (names, dtypes, shapes; no tensor data). Pure: the adapter tree calls it for every file in
// the workspace, so it must stay cheap.
import type { TensorEntry } from '../formats/safetensors';

export type AdapterFormat = 'peft' | 'loralib' | 'kohya' | 'lycoris' | 'mlx' | 'diffusers-legacy' | 'cloneofsimo';

export const FORMAT_LABEL: Record<AdapterFormat, string> = {
  peft: 'PEFT LoRA',
  loralib: 'loralib (microsoft/LoRA)',
  kohya: 'kohya-ss / Civitai LoRA',
  lycoris: 'LyCORIS',
  mlx: 'mlx-lm LoRA',
  'diffusers-legacy': 'diffusers (legacy attn processors)',
  cloneofsimo: 'cloneofsimo lora',
};

export interface AdapterModule {
  name: string;
  /** Rank read from the down/A tensor; undefined when the format has none (e.g. full LoKr factors). */
  rank?: number;
  /** `.alpha` tensor present (kohya/LyCORIS): its value needs the data, so only its presence is known here. */
  hasAlphaTensor: boolean;
  /** Input and output features of the adapted layer (conv kernels shown after ×). */
  inFeatures?: number;
  outFeatures?: number;
  kernel?: number[];
  params: number;
  dtype: string;
  tensors: string[];
}

export interface ModuleGrouping {
  format: AdapterFormat | undefined;
  modules: AdapterModule[];
  /** Tensors that belong to no LoRA module (e.g. modules_to_save, DoRA magnitudes are attached). */
  otherTensors: string[];
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

interface Rule {
  format: AdapterFormat;
  re: RegExp;
  role: 'down' | 'up' | 'alpha' | 'other';
}

// Order matters: the first rule that matches a name wins.
const RULES: Rule[] = [
  { format: 'peft', re: /^(.*)\.lora_A(?:\.[A-Za-z0-9_-]+)?\.weight$/, role: 'down' },
  { format: 'peft', re: /^(.*)\.lora_B(?:\.[A-Za-z0-9_-]+)?\.weight$/, role: 'up' },
  { format: 'peft', re: /^(.*)\.lora_magnitude_vector(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$/, role: 'other' },
  { format: 'peft', re: /^(.*)\.lora_embedding_A(?:\.[A-Za-z0-9_-]+)?$/, role: 'down' },
  { format: 'peft', re: /^(.*)\.lora_embedding_B(?:\.[A-Za-z0-9_-]+)?$/, role: 'up' },
  { format: 'loralib', re: /^(.*)\.lora_A$/, role: 'down' },
  { format: 'loralib', re: /^(.*)\.lora_B$/, role: 'up' },
  { format: 'kohya', re: /^(.*)\.lora_down\.weight$/, role: 'down' },
  { format: 'kohya', re: /^(.*)\.lora_up\.weight$/, role: 'up' },
  { format: 'kohya', re: /^(.*)\.lora_mid\.weight$/, role: 'other' },
  { format: 'lycoris', re: /^(.*)\.hada_w1_b$/, role: 'down' },
  { format: 'lycoris', re: /^(.*)\.(hada_w1_a|hada_w2_a|hada_w2_b|hada_t1|hada_t2)$/, role: 'other' },
  { format: 'lycoris', re: /^(.*)\.lokr_w2_b$/, role: 'down' },
  { format: 'lycoris', re: /^(.*)\.(lokr_w1|lokr_w1_a|lokr_w1_b|lokr_w2|lokr_w2_a|lokr_t2)$/, role: 'other' },
  { format: 'kohya', re: /^(.*)\.dora_scale$/, role: 'other' },
  { format: 'kohya', re: /^(.*)\.alpha$/, role: 'alpha' },
  { format: 'mlx', re: /^(.*)\.lora_a$/, role: 'down' },
  { format: 'mlx', re: /^(.*)\.lora_b$/, role: 'up' },
  { format: 'diffusers-legacy', re: /^(.*_lora)\.down\.weight$/, role: 'down' },
  { format: 'diffusers-legacy', re: /^(.*_lora)\.up\.weight$/, role: 'up' },
  { format: 'cloneofsimo', re: /^(.*:\d+):down$/, role: 'down' },
  { format: 'cloneofsimo', re: /^(.*:\d+):up$/, role: 'up' },
];

export function groupModules(tensors: readonly Pick<TensorEntry, 'name' | 'dtype' | 'shape'>[]): ModuleGrouping {
  const byModule = new Map<string, { down?: Pick<TensorEntry, 'name' | 'dtype' | 'shape'>; up?: Pick<TensorEntry, 'name' | 'dtype' | 'shape'>; alpha: boolean; params: number; tensors: string[]; dtype: string; format: AdapterFormat }>();
  const counts = new Map<AdapterFormat, number>();
  const other: string[] = [];
  for (const t of tensors) {
    const rule = RULES.find((r) => r.re.test(t.name));
    if (!rule) {
      other.push(t.name);
      continue;
    }
    const name = rule.re.exec(t.name)![1];
    let m = byModule.get(name);
    if (!m) {
      m = { alpha: false, params: 0, tensors: [], dtype: t.dtype, format: rule.format };
      byModule.set(name, m);
    }
    m.tensors.push(t.name);
    if (rule.role === 'alpha') {
      m.alpha = true;
      continue;
    }
    m.params += numel(t.shape);
    if (rule.role === 'down') m.down = t;
    if (rule.role === 'up') m.up = t;
    // A module's format is its A/down tensor's (a LyCORIS file's `.alpha` matched the kohya rule).
    if (rule.role === 'down' || m.format === 'kohya') m.format = rule.format;
  }
  const modules: AdapterModule[] = [];
  for (const [name, m] of byModule) {
    if (!m.down && !m.up && m.format !== 'lycoris') {
      other.push(...m.tensors);
      continue;
    }
    counts.set(m.format, (counts.get(m.format) ?? 0) + 1);
    modules.push({ name, hasAlphaTensor: m.alpha, params: m.params, dtype: m.dtype, tensors: m.tensors, ...shapeOf(m.format, m.down?.shape, m.up?.shape) });
  }
  let format: AdapterFormat | undefined;
  let best = 0;
  for (const [f, n] of counts) if (n > best) [format, best] = [f, n];
  // kohya files with LoCon/LoHa/LoKr tensors are LyCORIS.
  if (format === 'kohya' && counts.has('lycoris')) format = 'lycoris';
  return { format, modules: modules.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true })), otherTensors: other };
}

function shapeOf(format: AdapterFormat, down?: number[], up?: number[]): Pick<AdapterModule, 'rank' | 'inFeatures' | 'outFeatures' | 'kernel'> {
  switch (format) {
    case 'mlx':
      // lora_a [in, r], lora_b [r, out]
      return { rank: down?.[1], inFeatures: down?.[0], outFeatures: up?.[1] };
    case 'lycoris':
      // hada_w1_b [r, in]; hada_w1_a [out, r]; lokr has no single rank
      return down ? { rank: down[0], inFeatures: down.slice(1).reduce((a, b) => a * b, 1) } : {};
    default: {
      // A/down [r, in, (kh, kw)], B/up [out, r, (1, 1)]
      const kernel = down && down.length === 4 && (down[2] !== 1 || down[3] !== 1) ? down.slice(2) : undefined;
      return { rank: down?.[0], inFeatures: down?.[1], outFeatures: up?.[0], kernel };
    }
  }
}
