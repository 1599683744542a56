// What a `lora-lab` subcommand is, and the small helpers every command shares: strict flag parsing
// that turns mistakes into a UsageError (exit 2, usage printed), and CliError for everything else.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ReasonError } from '../shared/errors';

export interface CliCommand {
  /** The word after `lora-lab`. */
  name: string;
  /** One line for `lora-lab --help`. */
  summary: string;
  /** Full help text printed by `lora-lab <name> --help` and after a usage error. */
  usage: string;
  /** Runs the command; resolves to the exit code (undefined = 0). Throw UsageError/CliError for bad input. */
  run(argv: string[]): Promise<number | void> | number | void;
}

/** Exit codes: 0 ok, 1 the work failed, 2 bad command line, 130 stopped by Ctrl-C (checkpoint saved). */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export type CliErrorReason =
  | 'usage' // the command line is wrong: the message and the command's usage are printed, exit code 2
  | 'failed'; // the input (a file, a value) is wrong or the work failed: the message is printed, exit code 1

const EXIT_CODE: Record<CliErrorReason, number> = { usage: EXIT.usage, failed: EXIT.failed };

/** A command's error for the user: the message is printed and the reason picks the exit code. */
export class CliError extends ReasonError<CliErrorReason> {
  static override readonly family: string = 'CliError';

  constructor(message: string, options: { reason?: CliErrorReason; cause?: unknown } = {}) {
    super(options.reason ?? 'failed', message, { cause: options.cause });
  }

  get exitCode(): number {
    return EXIT_CODE[this.reason];
  }
}

/** The command line is wrong: a CliError with reason 'usage' (the usage is printed, exit code 2). */
export class UsageError extends CliError {
  static override readonly family = 'UsageError';

  constructor(message: string) {
    super(message, { reason: 'usage' });
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flag values: booleans for boolean flags, strings (or string[] with `multiple`) otherwise. */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string;
};

/** `util.parseArgs` in strict mode, with its errors rephrased as UsageError. */
export function parseFlags<O extends Options>(argv: string[], options: O): { values: FlagValues<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as FlagValues<O>, positionals };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg);
  }
}

/** Parse a flag value as a number, naming the flag when it is not one. */
export function numberFlag(value: string | undefined, flag: string, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} expects a number, got "${value}"`);
  if (opts.integer && !Number.isInteger(n)) throw new UsageError(`${flag} expects an integer, got ${value}`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`${flag} must be ≥ ${opts.min}, got ${value}`);
  return n;
}
