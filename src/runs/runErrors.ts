// Typed errors for runs on disk and the training driver (STYLE.md §7): a `reason` callers can switch on
// (the CLI maps them to exit codes, the worker to a failed run) and a message that names the file.
import { ReasonError } from '../shared/errors';

export type RunErrorReason =
  | 'not-a-run' // the folder has no readable run.json
  | 'bad-run-file' // run.json / config.json / checkpoint.json is not what we wrote
  | 'no-checkpoint' // asked for a checkpoint that does not exist
  | 'busy' // the run is still being trained by a live process (or another trainer holds its lock)
  | 'io' // a run file could not be written (disk full, read-only, file size limit…)
  | 'cut-off' // a run folder whose creation stopped before run.json was written
  | 'already-completed' // --resume on a run that finished
  | 'config' // the experiment config file could not be read or has errors
  | 'unsupported'; // an experiment kind this build cannot train yet

export class RunError extends ReasonError<RunErrorReason> {
  static override readonly family = 'RunError';
  /** The file or folder the problem is about. */
  readonly path: string | undefined;

  constructor(reason: RunErrorReason, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(reason, message, { cause: options.cause });
    this.path = options.path;
  }
}
