// Which attention projection a `lora.targetModules` entry names, for kind "attention-adaptation".
// One rule shared by the config parser (diagnostics) and the engine (building the model).

export type AttentionProjection = 'q' | 'k' | 'v' | 'o';

/** The accepted spellings, for "did you mean" hints. */
export const ATTENTION_TARGET_NAMES = ['q', 'k', 'v', 'o', 'q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

/** "q", "q_proj", "attention.q_proj" → "q"; anything else → undefined. */
export function attentionProjectionOf(name: string): AttentionProjection | undefined {
  const last = name.split('.').pop() ?? name;
  return /^([qkvo])(_proj)?$/.exec(last)?.[1] as AttentionProjection | undefined;
}
