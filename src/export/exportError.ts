// Typed errors of `lora-lab export` (STYLE.md §7): a reason callers can switch on and a message that
// names the experiment, field or folder and what to do.
import { ReasonError } from '../shared/errors';

export type ExportErrorReason =
  | 'not-expressible' // the experiment has no transformers + PEFT equivalent (a built-in synthetic kind)
  | 'out-not-empty' // --out names a folder that already holds files (nothing is overwritten)
  | 'init-from' // --init-from is neither a seed nor a run folder of the same experiment
  | 'bad-input'; // the model folder or dataset the experiment names cannot be used

export class ExportError extends ReasonError<ExportErrorReason> {
  static override readonly family = 'ExportError';
  constructor(
    reason: ExportErrorReason,
    message: string,
    readonly path?: string,
  ) {
    super(reason, message);
  }
}
