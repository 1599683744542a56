// What a run leaves on disk, shared by the CLI, the training worker, the extension host and the
// dashboard. A run is a folder `<outputDir>/<runId>/`:
//   run.json                 RunInfo (rewritten atomically on every status change)
//   config.json              the resolved ExperimentConfig
//   metrics.jsonl            one MetricPoint per logged step (append-only; a torn last line is ignored)
//   checkpoints/step-<n>/    checkpoint.json (CheckpointInfo) + tensors.safetensors (params + optimizer state)
//                            + manifest.json (size and SHA-256 of both, written last)
//   run.lock.<k>             the trainer holding the run (src/runs/runLock.ts); `.released` once it let go
//   adapter/                 adapter_config.json + adapter_model.safetensors (PEFT layout)
//   truth/                   experiment-specific reference tensors (e.g. the true U·V of low-rank-recovery)

import type { BackendReport, MetricPoint, RunParamSummary } from '../engine/reports';

// What the engine reports about a run, stored in run.json and metrics.jsonl as it is.
export type { BackendReport, MetricPoint, RunParamSummary };

export type RunStatus = 'running' | 'completed' | 'cancelled' | 'failed' | 'interrupted';

export interface RunInfo {
  formatVersion: 1;
  runId: string;
  name: string;
  kind: string;
  status: RunStatus;
  configFile?: string;
  createdAt: string; // ISO time
  updatedAt: string;
  finishedAt?: string;
  step: number;
  totalSteps: number;
  seed: number;
  backend: BackendReport;
  versions: { loraLab: string; tfjs: string; node: string };
  /** Last finite train loss and eval loss seen. */
  lastLoss?: number;
  lastEvalLoss?: number;
  /** Step of the newest complete checkpoint, if any. */
  lastCheckpointStep?: number;
  /** Present when status is 'failed': what went wrong (e.g. "loss became NaN at step 57"). */
  error?: string;
  /** Set by `--resume`: the runs this one continued from (the same folder keeps its id). */
  resumedAt?: { step: number; at: string }[];
  /** Parameter summary at start, in both conventions. */
  params?: RunParamSummary;
  /** Base model folder for causal-lm runs (the adapter is useless without it). */
  baseModel?: string;
  /** Labels the user gave the run (Runs view: Tag…); shown after its description. */
  tags?: string[];
  /** Process training the run and its host: a 'running' run whose process is gone reads as 'interrupted'. */
  pid?: number;
  hostname?: string;
  /**
   * When that host had booted (ms since the epoch, from its uptime) as the run started: after a reboot the
   * pid may belong to an unrelated process, so a run from an earlier boot reads as 'interrupted'.
   */
  bootTime?: number;
}

export interface CheckpointInfo {
  step: number;
  createdAt: string;
  /** Opaque engine state (optimizer step counts, RNG and data cursor) needed to continue exactly. */
  state: Record<string, unknown>;
}
