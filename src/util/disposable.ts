// Disposal helpers (STYLE.md §3): a base class that owns what it registers, idempotent dispose, and
// anything registered after dispose is disposed at once (hexeditor `src/dispose.ts`).
export interface IDisposable {
  dispose(): unknown;
}

export function toDisposable(fn: () => void): IDisposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      fn();
    },
  };
}

/** Disposes every item, even if one throws; rethrows the first error afterwards. */
export function disposeAll(items: Iterable<IDisposable>): void {
  let first: unknown;
  for (const d of items) {
    try {
      d.dispose();
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}

export abstract class Disposable implements IDisposable {
  private readonly _store: IDisposable[] = [];
  private _isDisposed = false;

  protected get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Takes ownership of `d`; if this object is already disposed, `d` is disposed now. */
  protected _register<T extends IDisposable>(d: T): T {
    if (this._isDisposed) {
      d.dispose();
    } else {
      this._store.push(d);
    }
    return d;
  }

  dispose(): void {
    if (this._isDisposed) return;
    this._isDisposed = true;
    // Last registered first: later things may depend on earlier ones.
    disposeAll(this._store.splice(0).reverse());
  }
}

/** A bag of disposables with its own lifetime (e.g. one training job), like rust-analyzer's client cleanups. */
export class DisposableStore extends Disposable {
  add<T extends IDisposable>(d: T): T {
    return this._register(d);
  }
}
