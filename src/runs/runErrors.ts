// Typed errors for runs on disk and the training driver (STYLE.md §7): a `reason` callers can switch on
// (the CLI maps them to exit codes, the worker to a failed run) and a message that names the file.

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

export class RunError extends Error {
  override readonly name = 'RunError';
  readonly reason: RunErrorReason;
  /** The file or folder the problem is about. */
  readonly path: string | undefined;

  constructor(reason: RunErrorReason, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.path = options.path;
  }

  /** True when `e` is a RunError (and, if given, has this `reason`); survives a second bundle copy. */
  static is(e: unknown, reason?: RunErrorReason): e is RunError {
    const o = e as { name?: unknown; reason?: unknown } | null;
    return (
      typeof o === 'object' && o !== null && o.name === 'RunError' && typeof o.reason === 'string' &&
      (reason === undefined || o.reason === reason)
    );
  }
}
