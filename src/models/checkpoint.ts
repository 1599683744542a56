// Activation checkpointing per transformer block (transformers' gradient_checkpointing): the forward
// pass keeps only the block's input; the backward pass runs the block again under a fresh tape and
// takes its gradients from there. Activations then take one block's worth at a time instead of every
// block's, for one more forward pass of each block. The recomputation runs the same kernels on the
// same inputs (dropout masks are seeded per module and step), so the gradients are the same.
import * as tf from '@tensorflow/tfjs-core';
import type { LoraLookup, LoraModule } from './linear';

/** One transformer block: residual stream in, residual stream out, LoRA looked up by module path. */
export type BlockFn = (h: tf.Tensor, lora?: LoraLookup) => tf.Tensor;

const TRAINABLE = ['A', 'B', 'magnitude', 'bias'] as const;

/**
 * block(h, lora) with its activations recomputed in the backward pass. `paths` are the block's linear
 * layers: their LoRA tensors become inputs of the checkpointed op, so their gradients flow out of it.
 */
export function checkpointBlock(block: BlockFn, h: tf.Tensor, lora: LoraLookup | undefined, paths: string[]): tf.Tensor {
  const slots: { path: string; key: (typeof TRAINABLE)[number] }[] = [];
  const tensors: tf.Tensor[] = [];
  for (const path of paths) {
    const m = lora?.(path);
    if (!m) continue;
    for (const key of TRAINABLE) {
      const t = m[key];
      if (t) {
        slots.push({ path, key });
        tensors.push(t);
      }
    }
  }
  // The lookup with the block's LoRA tensors replaced by the given ones (the op's inputs).
  const lookupWith = (xs: tf.Tensor[]): LoraLookup | undefined => {
    if (!lora) return undefined;
    const byPath = new Map<string, LoraModule>();
    slots.forEach((s, i) => {
      const m = byPath.get(s.path) ?? { ...lora(s.path)! };
      (m as unknown as Record<string, tf.Tensor>)[s.key] = xs[i];
      byPath.set(s.path, m);
    });
    return (p) => byPath.get(p) ?? lora(p);
  };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const ins = args as tf.Tensor[];
    save(ins);
    return {
      value: block(ins[0], lookupWith(ins.slice(1))),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        // tfjs runs this inside the outer backward pass, whose tape a nested gradients() call would
        // replace and then clear (it frees its own tape when no other is recording): keep the outer
        // one aside meanwhile. The nested tape's saved tensors are freed by the nested call.
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outer = state.activeTape;
        try {
          const { grads } = tf.engine().gradients(() => block(saved[0], lookupWith(saved.slice(1))) as tf.Tensor, saved, dy as tf.Tensor, true);
          return grads.map((g, i) => g ?? tf.zerosLike(saved[i]));
        } finally {
          state.activeTape = outer;
        }
      },
    };
  });
  return op(h, ...tensors);
}
