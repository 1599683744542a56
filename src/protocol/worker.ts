// Messages between the extension host (src/jobs) and the training worker (src/worker/trainWorker.ts).
// One direction per union, discriminated by `type` (STYLE.md §4).
import type { BackendReport, MetricPoint, RunInfo, RunStatus } from './runFormat';

export type ToWorker =
  /** Start a new run from a config file, or resume the run in `resumeRunDir`. */
  | {
      type: 'start';
      configPath?: string;
      resumeRunDir?: string;
      /** Which run of a sweep config to train. */
      sweepIndex?: number;
      /** Overrides the config's outputDir (absolute). */
      outDir?: string;
      /** Folder holding the tfjs wasm binaries. */
      wasmDir?: string;
      /** Threads: the native kernels' (default: the cores, up to 8), else wasm threads (see src/runs/backendSetup.ts). */
      threads?: number;
    }
  /** Stop after the current step, write a checkpoint, and end with status 'cancelled'. */
  | { type: 'cancel' };

export type FromWorker =
  /** The run folder exists and training is about to begin. */
  | { type: 'didStart'; runDir: string; run: RunInfo; backend: BackendReport }
  /** A batch of metric points (throttled; at most a few per second). */
  | { type: 'didProgress'; runDir: string; step: number; totalSteps: number; points: MetricPoint[]; etaMs?: number }
  /** A checkpoint was written. */
  | { type: 'didCheckpoint'; runDir: string; step: number }
  /** The run ended; `status` says how. `error` is set when it failed. */
  | { type: 'didFinish'; runDir: string; status: RunStatus; step: number; adapterDir?: string; error?: string }
  /** A log line for the output channel. */
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string };
