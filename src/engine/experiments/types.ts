// What a built-in experiment gives the session: a generic TrainTask plus the adapted modules (for ΔW,
// export and parameter counts) and the ground truth it was generated from.
import type * as tf from '@tensorflow/tfjs-core';
import type { RunParamSummary } from '../reports';
import type { LoRALinear } from '../lora';
import type { NamedTensors } from '../namedTensors';
import type { TrainTask } from '../trainLoop';

export interface ExperimentTask<TBatch> extends TrainTask<TBatch> {
  /** Adapted modules by module path (the PEFT key stem), e.g. "linear" or "attention.q". */
  modules: Record<string, LoRALinear>;
  /**
   * Trainable base tensors that are not LoRA factors (the seed attention's W_O), by module path of the
   * tensor in PyTorch layout; exported as PEFT `modules_to_save`.
   */
  extraTrainable(): Record<string, tf.Tensor>;
  params: RunParamSummary;
  /** Ground truth, e.g. { true_delta_w, base_weight }. */
  reference(): NamedTensors;
  dispose(): void;
}
