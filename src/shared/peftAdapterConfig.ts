// The adapter_config.json LoRA Lab writes next to a trained adapter, in PEFT's LoraConfig layout, so
// that PEFT's PeftModel.from_pretrained applies exactly the scale training used. Pure.
import { peftAlphaFor, type ScalingMode } from './loraScale';

export interface PeftAdapterConfigInput {
  r: number;
  /** The configured alpha (lora.alpha); with scaling 'none' the file holds r instead. */
  alpha: number;
  scaling: ScalingMode;
  dropout: number;
  /** Module names as PEFT matches them (suffixes), e.g. ["q_proj", "v_proj"]; written sorted, once each. */
  targetModules: string[];
  useDora?: boolean;
  /** GPT-2's Conv1D stores weights [in, out]; PEFT sets this for it and warns when it is missing. */
  fanInFanOut?: boolean;
  bias?: 'none' | 'all' | 'lora_only';
  initLoraWeights?: boolean | 'gaussian';
  modulesToSave?: string[] | null;
  baseModelNameOrPath?: string | null;
  taskType?: string | null;
}

export interface PeftAdapterConfig {
  /** The JSON object to write as adapter_config.json. */
  config: Record<string, unknown>;
  /** What a user should know about how the file says it (e.g. scaling 'none' written as lora_alpha = r). */
  notes: string[];
}

export function peftAdapterConfig(input: PeftAdapterConfigInput): PeftAdapterConfig {
  const { loraAlpha, useRslora } = peftAlphaFor(input.alpha, input.r, input.scaling);
  const notes: string[] = [];
  if (input.scaling === 'none' && input.alpha !== input.r) {
    notes.push(`lora.scaling "none" trains with scale 1; adapter_config.json says lora_alpha ${loraAlpha} (= r) instead of the configured alpha ${input.alpha}, so PEFT applies α/r = 1 too`);
  }
  return {
    config: {
      peft_type: 'LORA',
      task_type: input.taskType ?? null,
      base_model_name_or_path: input.baseModelNameOrPath ?? null,
      revision: null,
      inference_mode: true,
      r: input.r,
      lora_alpha: loraAlpha,
      lora_dropout: input.dropout,
      target_modules: [...new Set(input.targetModules)].sort(),
      use_rslora: useRslora,
      // DoRA: the weights also hold base_model.model.<path>.lora_magnitude_vector [out] (no ".weight", as PEFT saves it).
      use_dora: input.useDora === true,
      fan_in_fan_out: input.fanInFanOut === true,
      bias: input.bias ?? 'none',
      init_lora_weights: input.initLoraWeights ?? true,
      modules_to_save: input.modulesToSave && input.modulesToSave.length > 0 ? [...input.modulesToSave] : null,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
    },
    notes,
  };
}
