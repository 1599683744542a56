// The LoRA scale s on the path x·Aᵀ·Bᵀ·s, in one place for the engine, the models, the CLI, the
// extension host and the webview. Pure: no tfjs, no node built-ins, no vscode.

/** How the configured alpha becomes the scale: PEFT's α/r, rsLoRA's α/√r, or the reference LoRA code's 1. */
export type ScalingMode = 'standard' | 'rslora' | 'none';

/** s = α/r ('standard'), α/√r ('rslora'), 1 ('none': the reference LoRA code has no α). */
export function loraScale(alpha: number, r: number, mode: ScalingMode): number {
  switch (mode) {
    case 'standard':
      return alpha / r;
    case 'rslora':
      return alpha / Math.sqrt(r);
    case 'none':
      return 1;
    default: {
      const never: never = mode;
      throw new RangeError(`lora.scaling: unknown mode "${String(never)}"`);
    }
  }
}

/** PEFT's scale from adapter_config.json fields (LoraLayer.update_layer): α/√r with use_rslora, else α/r. */
export function peftScale(alpha: number, r: number, useRslora: boolean): number {
  return loraScale(alpha, r, useRslora ? 'rslora' : 'standard');
}

/**
 * The lora_alpha / use_rslora an adapter_config.json must hold so that PEFT applies the scale `mode`
 * gives. PEFT has no "scale 1" switch: for 'none' lora_alpha = r makes α/r = 1.
 */
export function peftAlphaFor(alpha: number, r: number, mode: ScalingMode): { loraAlpha: number; useRslora: boolean } {
  if (mode === 'none') return { loraAlpha: r, useRslora: false };
  return { loraAlpha: alpha, useRslora: mode === 'rslora' };
}
