// What the engine reports about a training: the backend it runs on, one point per logged step and the
// parameter counts. The run format (src/protocol/runFormat.ts) stores these as they are and re-exports
// them, so the engine does not depend on the wire format. Types only: the webview sees them too.

export interface BackendReport {
  /** The tfjs backend actually in use: 'tensorflow' (tfjs-node), 'wasm' or 'cpu'; 'torch' for a job exported to transformers' Trainer. */
  name: 'tensorflow' | 'wasm' | 'cpu' | 'torch';
  simd?: boolean;
  threads?: number;
  /** Native kernels used for matrix products, e.g. "native avx512 kernels (lora-lab-native 1)". */
  kernels?: string;
  /** Why a faster backend was not used, e.g. "@tensorflow/tfjs-node is not installed". */
  notes: string[];
}

export interface RunParamSummary {
  /** Parameters of the base model (all of them, frozen or not). */
  totalParams: number;
  /** What trains in this run. */
  trainableParams: number;
  /** PEFT's figure: trainable / (total + LoRA) in percent. */
  trainablePercentPeft: number;
}

/** One logged step (src/shared/metricColumns.ts, where the dashboard's column algebra lives with it). */
export type { MetricPoint } from '../shared/metricColumns';
