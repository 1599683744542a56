// The generic training loop (minGPT's trainer, nanoGPT's loop): free of model code. A model is a task:
// trainable variables, a loss function and a deterministic batch source. The loop is an async generator
// of MetricPoints so a worker or CLI can stream progress, checkpoint between steps and cancel.
//
// Per step (1-based `step`; update index `step − 1` is what schedules and batch sources see):
//   batch ← nextBatch(step − 1); (loss, grads) ← ∂lossFn/∂variables; read loss and ‖g‖;
//   non-finite → NonFiniteLossError *before* any update (variables keep the last good values);
//   clip; optimizer.apply(lr(step − 1)); maybe eval; maybe yield; yield to the event loop (macrotask).
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone has no gradient kernels registered; the union bundle would do this for us.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import type { MetricPoint } from './reports';
import { NonFiniteLossError } from './errors';
import { clipByGlobalNorm, globalNorm, type GradMap, type Optimizer, type ParamMap } from './optim';

export interface TrainTask<TBatch> {
  /** What trains, by stable name (checkpoint and adapter keys derive from these). */
  variables: ParamMap;
  /** The scalar loss of one batch; `training` switches dropout on. Runs inside a gradient tape. */
  lossFn(batch: TBatch, training: boolean, updateIndex: number): tf.Scalar;
  /** The batch of update `updateIndex` (0-based). Must be a pure function of it, for exact resume. */
  nextBatch(updateIndex: number): TBatch;
  /** Frees what nextBatch allocated. */
  disposeBatch?(batch: TBatch): void;
  /** Held-out loss (no dropout, no update). */
  evalLoss?(): number | Promise<number>;
}

export interface TrainLoopOptions {
  optimizer: Optimizer;
  /** Learning rate of update `updateIndex` (0-based). */
  lrAt(updateIndex: number): number;
  totalSteps: number;
  /** Steps already done (resume); the loop runs steps startStep+1 … totalSteps. Default 0. */
  startStep?: number;
  /** Clip the global gradient norm to this; 0 or undefined: no clipping. */
  gradClip?: number;
  /** Evaluate every N steps (and at the last step); 0 or undefined: never. */
  evalEvery?: number;
  /**
   * Steps at which a point is yielded: multiples of any of these (plus the last step, and the last done
   * step on abort). Default [1]: every step. Put the checkpoint interval here so a consumer gets control
   * (with the variables at exactly that step) to checkpoint.
   */
  yieldEvery?: number[];
  /**
   * Stops cleanly between steps: yields a final point for the last step finished in this call (none if the
   * signal was already aborted before the first one), never throws.
   */
  signal?: AbortSignal;
  /** Milliseconds already spent before startStep (resumed runs keep a continuous clock). */
  elapsedOffsetMs?: number;
  /** Called after every finished step (before any yield), e.g. to advance a session's step counter. */
  onStep?(step: number): void;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** A real macrotask (not a microtask), so a worker's 'cancel' message can be delivered between steps. */
export function macrotask(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}

export async function* trainLoop<TBatch>(task: TrainTask<TBatch>, opts: TrainLoopOptions): AsyncGenerator<MetricPoint, void, undefined> {
  const start = now();
  const offset = opts.elapsedOffsetMs ?? 0;
  const yieldEvery = (opts.yieldEvery ?? [1]).filter((n) => n > 0);
  const evalEvery = opts.evalEvery ?? 0;
  const names = Object.keys(task.variables);
  const varList = names.map((n) => task.variables[n]);
  let lastPoint: MetricPoint | undefined;
  let lastYielded = -1;

  for (let step = (opts.startStep ?? 0) + 1; step <= opts.totalSteps; step++) {
    if (opts.signal?.aborted) break;
    const u = step - 1;
    const lr = opts.lrAt(u);
    const batch = task.nextBatch(u);
    let point: MetricPoint;
    const grads: GradMap = {};
    let lossT: tf.Scalar | undefined;
    let normT: tf.Scalar | undefined;
    try {
      const r = tf.variableGrads(() => task.lossFn(batch, true, u), varList);
      lossT = r.value;
      // variableGrads keys grads by the variables' internal names; map them back to ours.
      for (let i = 0; i < names.length; i++) {
        const g = r.grads[varList[i].name];
        if (g) grads[names[i]] = g;
      }
      normT = globalNorm(grads);
      const [lossV, normV] = await Promise.all([lossT.data(), normT.data()]);
      const loss = lossV[0];
      const gradNorm = normV[0];
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(step, loss, 'loss');
      if (!Number.isFinite(gradNorm)) throw new NonFiniteLossError(step, gradNorm, 'gradient norm');
      const applied = opts.gradClip && opts.gradClip > 0 ? clipByGlobalNorm(grads, gradNorm, opts.gradClip) : grads;
      opts.optimizer.apply(task.variables, applied, lr);
      if (applied !== grads) tf.dispose(Object.values(applied));
      point = { step, loss, lr, gradNorm, elapsedMs: 0 };
    } finally {
      tf.dispose(Object.values(grads));
      lossT?.dispose();
      normT?.dispose();
      task.disposeBatch?.(batch);
    }
    const isLast = step === opts.totalSteps;
    if (task.evalLoss && evalEvery > 0 && (step % evalEvery === 0 || isLast)) point.evalLoss = await task.evalLoss();
    point.elapsedMs = offset + (now() - start);
    lastPoint = point;
    opts.onStep?.(step);
    if (isLast || point.evalLoss !== undefined || yieldEvery.some((n) => step % n === 0)) {
      lastYielded = step;
      yield point;
    }
    await macrotask();
  }
  // Cancelled between steps: report where we stopped (once), without throwing.
  if (lastPoint && lastPoint.step !== lastYielded) yield { ...lastPoint, elapsedMs: offset + (now() - start) };
}
