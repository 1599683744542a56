// One line of documentation per key of a PEFT `adapter_config.json` and of an mlx-lm adapter config
// (adapter_config.json or the training YAML): what a hover shows first, above the parameter counts.
// Pure. The wording follows PEFT's LoraConfig field docs and mlx-lm's LORA.md.

const PEFT: Record<string, string> = {
  r: 'LoRA rank r: A is r×in, B is out×r, so each adapted layer trains r·(in + out) parameters.',
  lora_alpha: 'α: ΔW = (α/r)·B·A, so the update is scaled by s = α/r (α/√r with `use_rslora`). Changing r without α changes the effective learning rate.',
  target_modules: 'Which modules get LoRA: names matched against the end of each module path (a list), a regex matched against the whole path (a string), or "all-linear".',
  lora_dropout: 'Dropout on the input of the LoRA branch (B·A·dropout(x)) during training; the frozen path is unaffected. No effect at inference.',
  bias: '"none": biases stay frozen (PEFT\'s default). "all": every bias trains. "lora_only": only the biases of adapted layers train.',
  task_type: 'What the PEFT model wraps (CAUSAL_LM, SEQ_CLS, …): picks the PeftModel class and which heads are saved.',
  base_model_name_or_path: 'The base model this adapter was trained on (hub id or folder): an adapter holds only ΔW and cannot run without it.',
  modules_to_save: 'Modules trained and saved in full besides LoRA (e.g. a classifier head): their parameters all count as trainable.',
  use_rslora: 'Rank-stabilised LoRA: scale s = α/√r instead of α/r, so larger ranks keep learning instead of being damped.',
  use_dora: 'DoRA: splits W into magnitude and direction; LoRA adapts the direction and a trained magnitude vector (one value per output feature) rescales it.',
  rank_pattern: 'Per-module ranks overriding r: {"regex or name": rank}. Matched against module paths.',
  alpha_pattern: 'Per-module α overriding lora_alpha: {"regex or name": alpha}.',
  fan_in_fan_out: 'True when the base layer stores its weight as (in, out), e.g. GPT-2\'s Conv1D; PEFT then transposes ΔW.',
  init_lora_weights: 'How A and B start: true = Kaiming-uniform A, zero B (ΔW = 0 at step 0); "gaussian"; "pissa" / "olora" / "loftq" initialise from W itself; false = random (testing only).',
  layers_to_transform: 'Only these layer indices get LoRA (with `layers_pattern` naming the layer list).',
  layers_pattern: 'The name of the layer list `layers_to_transform` indexes into (e.g. "layers", "h").',
  peft_type: 'The PEFT method: "LORA" here. Other values (LOHA, LOKR, IA3, …) are different adapters.',
  inference_mode: 'Saved as true: loading gives a frozen adapter unless you pass is_trainable=True.',
  revision: 'Revision (branch / tag / commit) of the base model on the hub.',
  lora_bias: 'PEFT 0.14+: a trainable bias on B (lora_B.bias); not the same as `bias`.',
  megatron_config: 'Settings for Megatron tensor-parallel layers; null for ordinary models.',
  auto_mapping: 'The auto class used to load the base model (set by PEFT when saving).',
};

const MLX: Record<string, string> = {
  lora_parameters: 'mlx-lm LoRA settings: rank, scale (absolute: ΔW = scale·B·A, not α/r), dropout, and which keys (module paths) to adapt.',
  rank: 'mlx-lm LoRA rank r (lora_parameters.rank): A is in×r, B is r×out (mlx stores them transposed from PEFT).',
  scale: 'mlx-lm scale s: ΔW = s·B·A directly (PEFT would write α = s·r). Default 20 in mlx-lm\'s LoRA.',
  alpha: 'Older mlx-lm configs: α, with scale = α / rank.',
  dropout: 'Dropout on the LoRA branch\'s input during training.',
  keys: 'Module paths inside each transformer block to adapt (e.g. "self_attn.q_proj"); default: q_proj and v_proj.',
  num_layers: 'mlx-lm adapts only the last num_layers transformer blocks (default 16; -1 = all).',
  lora_layers: 'Older name of num_layers: the last N transformer blocks get LoRA.',
  fine_tune_type: '"lora", "dora" or "full": what mlx-lm trains.',
  model: 'The base model (hub id or folder) mlx-lm loads; the adapter needs it.',
  iters: 'Training iterations (steps).',
  batch_size: 'Sequences per step.',
  learning_rate: 'Adam learning rate.',
  max_seq_length: 'Longer training sequences are cut to this many tokens.',
  adapter_path: 'Where mlx-lm writes adapters.safetensors and adapter_config.json.',
  steps_per_eval: 'Validation loss every N steps.',
  save_every: 'Save the adapter every N steps.',
  grad_checkpoint: 'Recompute activations in the backward pass to save memory.',
};

/** True for an mlx-lm config (adapter_config.json written by mlx-lm, or its training YAML). */
export function isMlxConfig(raw: unknown): boolean {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return false;
  const o = raw as Record<string, unknown>;
  return typeof o.lora_parameters === 'object' || o.fine_tune_type !== undefined || (o.num_layers !== undefined && o.peft_type === undefined);
}

/** "**`lora_alpha`** — α: …" for a key path of a PEFT or mlx-lm config, or undefined for a key we do not document. */
export function configKeyDoc(path: readonly (string | number)[], mlx: boolean): string | undefined {
  const keys = path.filter((p): p is string => typeof p === 'string');
  const key = keys[keys.length - 1];
  if (key === undefined) return undefined;
  const doc = mlx ? MLX[key] : PEFT[key];
  if (!doc) return undefined;
  return `**\`${keys.join('.')}\`** — ${doc}`;
}
