// One generic request/response + event channel, shared by the extension host and the webview
// (STYLE.md §4, after hexeditor's shared/protocol.ts). Each side sends `TTo` bodies and receives
// `TFrom` bodies. A request carries `messageId`; its reply carries `inReplyTo` and either a `body`
// or an `error` string (PR-GitHub's `{seq, err}`), so a failed request rejects instead of hanging.
import { ReasonError } from '../shared/errors';

/** What actually travels over postMessage. */
export interface Envelope<T> {
  /** Set on requests: the reply must echo it as `inReplyTo`. */
  messageId?: number;
  /** Set on replies. */
  inReplyTo?: number;
  body?: T;
  /** Set on error replies instead of `body`. */
  error?: string;
}

/** Thrown (as a rejection) by `sendRequest` when the other side replied with an error. */
export class RemoteError extends ReasonError<'remote'> {
  static override readonly family = 'RemoteError';
  constructor(message: string) {
    super('remote', message);
  }
}

export type PostMessage<T> = (envelope: Envelope<T>, transfer?: ArrayBuffer[]) => void;

/**
 * Handles a message from the other side. For a request, return the reply body (or throw: the
 * error's message goes back as an error reply). For an event, the return value is ignored.
 */
export type IncomingHandler<TTo, TFrom> = (body: TFrom, isRequest: boolean) => Promise<TTo | undefined> | TTo | undefined;

interface Pending<TFrom> {
  resolve(body: TFrom): void;
  reject(e: Error): void;
  timer?: ReturnType<typeof setTimeout>;
}

export class MessageHandler<TTo, TFrom> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending<TFrom>>();
  private disposed = false;

  /**
   * @param post sends one envelope to the other side.
   * @param handler answers incoming messages.
   * @param validate turns untrusted input into a typed body or throws; the host passes a strict
   *   validator (the webview is untrusted), the webview may pass the identity.
   * @param timeoutMs how long a request waits for its reply (0 = forever).
   */
  constructor(
    private readonly post: PostMessage<TTo>,
    private readonly handler: IncomingHandler<TTo, TFrom>,
    private readonly validate: (raw: unknown) => TFrom = (raw) => raw as TFrom,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Fire-and-forget notification. */
  sendEvent(body: TTo, transfer?: ArrayBuffer[]): void {
    if (this.disposed) return;
    this.post({ body }, transfer);
  }

  /** Sends a request and resolves with the other side's reply body (rejects on an error reply). */
  sendRequest<R extends TFrom = TFrom>(body: TTo, transfer?: ArrayBuffer[]): Promise<R> {
    if (this.disposed) return Promise.reject(new Error('message channel is closed'));
    const messageId = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const p: Pending<TFrom> = { resolve: (b) => resolve(b as R), reject };
      if (this.timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(messageId);
          reject(new Error(`no reply to request #${messageId} within ${this.timeoutMs} ms`));
        }, this.timeoutMs);
      }
      this.pending.set(messageId, p);
      this.post({ messageId, body }, transfer);
    });
  }

  /** Feed every raw message from the other side here. Never throws. */
  async handleMessage(raw: unknown): Promise<void> {
    if (this.disposed) return;
    if (typeof raw !== 'object' || raw === null) return;
    const env = raw as Envelope<unknown>;
    if (typeof env.inReplyTo === 'number') {
      const p = this.pending.get(env.inReplyTo);
      if (!p) return;
      this.pending.delete(env.inReplyTo);
      if (p.timer) clearTimeout(p.timer);
      if (typeof env.error === 'string') {
        p.reject(new RemoteError(env.error));
        return;
      }
      try {
        p.resolve(this.validate(env.body));
      } catch (e) {
        p.reject(e instanceof Error ? e : new Error(String(e)));
      }
      return;
    }
    const isRequest = typeof env.messageId === 'number' && Number.isSafeInteger(env.messageId);
    let body: TFrom;
    try {
      body = this.validate(env.body);
    } catch (e) {
      if (isRequest) this.post({ inReplyTo: env.messageId, error: errorMessage(e) });
      return;
    }
    try {
      const reply = await this.handler(body, isRequest);
      if (isRequest) this.post({ inReplyTo: env.messageId, body: reply });
    } catch (e) {
      if (isRequest) this.post({ inReplyTo: env.messageId, error: errorMessage(e) });
    }
  }

  /** Rejects every pending request; later sends are dropped. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const [, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new Error('message channel closed'));
    }
    this.pending.clear();
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
