// The values pass over an adapter's tensors, one implementation for every caller: reads the value of
// each one-element tensor (alpha scalars, e.g. kohya's 0-d F16 `.alpha`) and counts NaN and ±Inf in
// each float tensor. No ΔW norms: that is inspectAdapter's own, heavier work.
//
// It is a generator that yields after each tensor, so the same code runs in one go (`checkValues`,
// which inspectAdapter uses) or in steps with a pause between tensors (`checkValuesAsync`, which the
// extension host uses so that a large adapter never blocks it). Decoding to float32 (F16, BF16, F64 via
// src/formats/dtype.ts) is the caller's `values`, e.g. SafetensorsFile.toFloat32.
import { elementCount, type TensorEntry } from '../safetensors';

/** A float tensor holding NaN or ±Inf values. */
export interface NonFiniteTensor {
  name: string;
  nan: number;
  inf: number;
}

export interface ValuesCheck {
  /** The value of every one-element tensor (any dtype) whose values were given: alpha scalars. */
  scalars: Map<string, number>;
  /** Float tensors with NaN or ±Inf, in header (data-section) order. */
  nonFinite: NonFiniteTensor[];
}

type TensorRef = Pick<TensorEntry, 'name' | 'dtype' | 'shape'>;
type Values = (name: string) => Float32Array | undefined;

// F8 stays out, as it always has: no LoRA tool writes adapters in it.
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

/**
 * Checks `tensors` one at a time, yielding each one's name after it is done (non-float tensors too,
 * unread unless they hold one element); returns the findings. Reads only the tensors it checks.
 */
export function* valuesCheckSteps(tensors: readonly TensorRef[], values: Values): Generator<string, ValuesCheck, void> {
  const out: ValuesCheck = { scalars: new Map(), nonFinite: [] };
  for (const t of tensors) {
    const float = FLOAT_DTYPES.has(t.dtype);
    if (float || elementCount(t.shape) === 1) {
      const v = values(t.name);
      if (v && v.length === 1) out.scalars.set(t.name, v[0]);
      if (v && float) {
        let nan = 0;
        let inf = 0;
        for (let i = 0; i < v.length; i++) {
          if (Number.isNaN(v[i])) nan++;
          else if (!Number.isFinite(v[i])) inf++;
        }
        if (nan || inf) out.nonFinite.push({ name: t.name, nan, inf });
      }
    }
    yield t.name;
  }
  return out;
}

/** The whole values pass at once. */
export function checkValues(tensors: readonly TensorRef[], values: Values): ValuesCheck {
  const steps = valuesCheckSteps(tensors, values);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/** The values pass with `await pause()` after each tensor (the host passes a setImmediate tick). */
export async function checkValuesAsync(tensors: readonly TensorRef[], values: Values, pause: () => Promise<void>): Promise<ValuesCheck> {
  const steps = valuesCheckSteps(tensors, values);
  let s = steps.next();
  while (!s.done) {
    await pause();
    s = steps.next();
  }
  return s.value;
}

/** One tensor's line in inspectAdapter's warnings: `tensor "x" has 2 NaN and 1 Inf value(s)`. */
export function nonFiniteWarning(t: NonFiniteTensor): string {
  return `tensor "${t.name}" has ${t.nan ? `${t.nan} NaN` : ''}${t.nan && t.inf ? ' and ' : ''}${t.inf ? `${t.inf} Inf` : ''} value(s)`;
}

/** All of them in one line, for the adapter tree: `NaN/Inf values in 4 tensors: a, b, c, …`; undefined when none. */
export function nonFiniteSummary(list: readonly NonFiniteTensor[]): string | undefined {
  if (!list.length) return undefined;
  const names = list.map((t) => t.name);
  return `NaN/Inf values in ${names.length} tensor${names.length === 1 ? '' : 's'}: ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}`;
}
