// Learning-rate schedules (nanoGPT's `get_lr`, generalised): linear warm-up, then constant, linear or
// cosine decay from `lr` down to `lr · minLrRatio` at the last step.
import type { ScheduleSettings } from '../formats/experimentTypes';

export interface ScheduleSpec extends ScheduleSettings {
  /** Peak learning rate (optimizer.lr). */
  lr: number;
  totalSteps: number;
}

/**
 * The learning rate used by update number `step` (0-based: the first update is step 0).
 * Warm-up: lr·(step+1)/warmupSteps for step < warmupSteps, so the first update is not wasted at lr 0.
 * Decay: progress p = (step − warmup) / max(1, totalSteps − 1 − warmup) in [0, 1];
 * linear lr·(1 − p·(1 − m)); cosine lr·(m + (1 − m)·½(1 + cos πp)); constant ignores m.
 */
export function lrAt(step: number, spec: ScheduleSpec): number {
  const { lr, warmupSteps, totalSteps, minLrRatio, name } = spec;
  if (warmupSteps > 0 && step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (name === 'constant') return lr;
  const span = Math.max(1, totalSteps - 1 - warmupSteps);
  const p = Math.min(1, Math.max(0, (step - warmupSteps) / span));
  const m = minLrRatio;
  switch (name) {
    case 'linear':
      return lr * (1 - p * (1 - m));
    case 'cosine':
      return lr * (m + (1 - m) * 0.5 * (1 + Math.cos(Math.PI * p)));
    default: {
      const never: never = name;
      throw new Error(`unknown schedule ${String(never)}`);
    }
  }
}

/** Binds a spec: `makeSchedule(spec)(step)`. */
export function makeSchedule(spec: ScheduleSpec): (step: number) => number {
  return (step) => lrAt(step, spec);
}
