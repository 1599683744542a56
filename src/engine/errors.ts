// Typed engine errors (STYLE.md §7): a `reason` discriminator and a static `is()` so callers (worker, CLI)
// can branch without string matching. Messages name the tensor, field or step and what was expected.
import { ReasonError } from '../shared/errors';

export type EngineErrorReason =
  | 'non-finite-loss'
  | 'shape-mismatch'
  | 'invalid-argument'
  | 'unsupported-kind'
  | 'checkpoint-mismatch'
  | 'backend-unavailable';

export class EngineError extends ReasonError<EngineErrorReason> {
  static override readonly family: string = 'EngineError';
}

/**
 * The loss (or the gradient norm) stopped being finite. Thrown *before* the update of that step is applied,
 * so the variables still hold the values of the last good step.
 */
export class NonFiniteLossError extends EngineError {
  static override readonly family = 'NonFiniteLossError';
  constructor(
    /** The 1-based step whose loss was not finite. */
    readonly step: number,
    readonly value: number,
    /** What was not finite: the loss itself or the gradient norm. */
    readonly quantity: 'loss' | 'gradient norm' = 'loss',
  ) {
    super('non-finite-loss', `${quantity} became ${describe(value)} at step ${step}`);
  }
}

function describe(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? 'Infinity' : '-Infinity';
}

export function shapeError(what: string, expected: readonly number[], got: readonly number[]): EngineError {
  return new EngineError('shape-mismatch', `${what}: expected shape [${expected.join(', ')}], got [${got.join(', ')}]`);
}

export function invalidArgument(message: string): EngineError {
  return new EngineError('invalid-argument', message);
}
