// The one base of LoRA Lab's typed errors (STYLE.md §7): a machine-readable `reason` callers branch on
// and a message that names the file, field or tensor and what was expected. Pure: every side uses it.

/** Instances carry the families of their class chain under this registry symbol (see `is`). */
const FAMILIES = Symbol.for('lora-lab.error-families');

type ErrorClass<T> = (abstract new (...args: never[]) => T) & { readonly family: string };

export class ReasonError<R extends string = string> extends Error {
  /**
   * The class's stable name: its `name` (minifiers rename classes, so not `constructor.name`) and the
   * brand `is()` recognises. Every subclass sets its own.
   */
  static readonly family: string = 'ReasonError';

  readonly reason: R;

  constructor(reason: R, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    const families: string[] = [];
    for (let c = new.target as unknown as { family?: string } | null; c && typeof c.family === 'string'; c = Object.getPrototypeOf(c)) {
      if (!families.includes(c.family)) families.push(c.family);
    }
    this.name = families[0];
    Object.defineProperty(this, FAMILIES, { value: families, enumerable: false });
  }

  /**
   * True when `e` is one of this class's errors (a subclass's included) and, if given, has this
   * reason. A second copy of the module (the host's and the worker's bundles each have one) fails
   * `instanceof`; its errors are recognised by the family brand and their reason, never by `name`.
   */
  static is<T extends ReasonError>(this: ErrorClass<T>, e: unknown, reason?: T['reason']): e is T {
    if (typeof e !== 'object' || e === null) return false;
    const families = (e as { [FAMILIES]?: unknown })[FAMILIES];
    const ours = e instanceof this || (Array.isArray(families) && families.includes(this.family));
    return ours && (reason === undefined || (e as { reason?: unknown }).reason === reason);
  }
}
