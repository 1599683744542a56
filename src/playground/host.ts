// The playground's host logic without VS Code: relays between the webview (untrusted, checked by
// parsePlaygroundMessage) and the worker that holds the model, and keeps what the page shows so a page
// that reloads (a hidden panel, retainContextWhenHidden off) gets it back on 'ready'.
import { parsePlaygroundMessage, type FromPlaygroundWorker, type PlaygroundRequest, type ToPlaygroundWebview, type ToPlaygroundWorker } from '../protocol/playground';

/** The worker side as the host sees it: a worker_threads Worker in VS Code, an in-process stand-in in tests. */
export interface PlaygroundWorkerPort {
  postMessage(msg: ToPlaygroundWorker): void;
  onMessage(listener: (msg: FromPlaygroundWorker) => void): void;
  /** The worker died (crash, out of memory): the host tells the page. */
  onExit(listener: (code: number) => void): void;
  terminate(): void;
}

export interface PlaygroundHostOptions {
  post(msg: ToPlaygroundWebview): void;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** Buttons in the page that ask for a folder: the panel opens a dialog and reopens the host. */
  choose?(what: 'adapter' | 'model'): void;
}

export class PlaygroundHost {
  private nextGenId = 1;
  private running: number | undefined;
  /** Everything posted since the model began loading: replayed to a page that (re)loads. */
  private shown: ToPlaygroundWebview[] = [];
  private lastGeneration: ToPlaygroundWebview[] = [];
  private disposed = false;

  constructor(
    private readonly worker: PlaygroundWorkerPort,
    readonly modelDir: string,
    readonly adapterDir: string | undefined,
    private readonly opts: PlaygroundHostOptions,
    open: Omit<Extract<ToPlaygroundWorker, { type: 'open' }>, 'type' | 'modelDir' | 'adapterDir'> = {},
  ) {
    worker.onMessage((m) => this.fromWorker(m));
    worker.onExit((code) => {
      if (this.disposed) return;
      const message = `the playground worker stopped (exit code ${code}); reopen Try Adapter to load the model again`;
      this.opts.log('error', message);
      if (this.running !== undefined) this.finishAll('failed', message);
      this.show({ type: 'didFailLoad', message });
    });
    this.show({ type: 'didStartLoading', modelDir, adapterDir });
    worker.postMessage({ type: 'open', modelDir, adapterDir, ...open });
  }

  private sides: ('base' | 'adapter')[] = [];

  private show(msg: ToPlaygroundWebview): void {
    if (msg.type === 'didStartGeneration') this.lastGeneration = [msg];
    else if (msg.type === 'didTokens' || msg.type === 'didFinishSide') this.lastGeneration.push(msg);
    else this.shown.push(msg);
    this.opts.post(msg);
  }

  private finishAll(stop: 'failed' | 'cancelled', error?: string): void {
    const genId = this.running!;
    for (const side of this.sides) this.show({ type: 'didFinishSide', genId, side, stop, error });
    this.running = undefined;
  }

  private fromWorker(m: FromPlaygroundWorker): void {
    if (this.disposed) return;
    switch (m.type) {
      case 'log':
        this.opts.log(m.level, m.message);
        return;
      case 'didLoad':
      case 'didFailLoad':
        if (m.type === 'didLoad') this.sides = m.info.adapterDir ? ['base', 'adapter'] : ['base'];
        else this.opts.log('error', `playground: ${m.message}`);
        this.show(m);
        return;
      case 'didStartGeneration':
      case 'didTokens':
      case 'didFinishSide':
        // Events of a generation that was replaced are dropped.
        if (m.genId !== this.running) return;
        this.show(m);
        if (m.type === 'didFinishSide') {
          const finished = new Set(this.lastGeneration.filter((x) => x.type === 'didFinishSide').map((x) => (x as { side: string }).side));
          if (this.sides.every((s) => finished.has(s))) this.running = undefined;
        }
        return;
      default: {
        const never: never = m;
        this.opts.log('warn', `playground worker: unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  /** A message from the webview (untrusted). */
  handleMessage(raw: unknown): void {
    let m;
    try {
      m = parsePlaygroundMessage(raw);
    } catch (e) {
      this.opts.log('warn', (e as Error).message);
      return;
    }
    switch (m.type) {
      case 'ready':
        for (const s of [...this.shown, ...this.lastGeneration]) this.opts.post(s);
        return;
      case 'generate':
        this.generate(m.request);
        return;
      case 'cancel':
        if (this.running !== undefined) this.worker.postMessage({ type: 'cancel', genId: this.running });
        return;
      case 'chooseAdapter':
      case 'chooseModel':
        this.opts.choose?.(m.type === 'chooseAdapter' ? 'adapter' : 'model');
        return;
      default: {
        const never: never = m;
        this.opts.log('warn', `playground: unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  /** Starts a generation (the worker cancels a running one first). Returns its id. */
  generate(request: PlaygroundRequest): number {
    const genId = this.nextGenId++;
    this.running = genId;
    this.worker.postMessage({ type: 'generate', genId, request });
    return genId;
  }

  /** What the page shows now, in the order it was posted (the replay a reloading page gets). */
  get history(): readonly ToPlaygroundWebview[] {
    return [...this.shown, ...this.lastGeneration];
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.worker.terminate();
  }
}
