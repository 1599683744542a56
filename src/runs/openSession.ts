// The one place a TrainingSession of any kind is opened, with what trainRun passes down (SessionOptions).
// The built-in experiments need nothing from disk (src/engine/session.ts builds them). A causal-lm session
// reads the model folder and the dataset named by the experiment (paths relative to the config file's
// folder) and hands them to the pure builder in src/models/causalLmSession.ts. Before any weight is read,
// the run's memory is estimated from config.json and the experiment, and a run that cannot fit is refused
// with the estimate, the limit and what to change.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { ExperimentConfig } from '../formats/experimentTypes';
import { parseHfConfig } from '../formats/hfConfig';
import { InteropError } from '../formats/adapters/interopError';
import { loadCausalLmInputs } from '../io/hfFolder';
import { weightFileBytes } from '../io/modelConfigCache';
import { buildBuiltinSession, type TrainingSession } from '../engine/session';
import { buildCausalLmSession, causalLmSettings, type CausalLmSession } from '../models/causalLmSession';
import { causalLmMemoryInput, describeMemoryEstimate, estimateTrainingMemory, memoryRefusal } from '../engine/memoryEstimate';
import type { BackendFacts } from './backendSetup';

/** What opening a session needs besides the experiment; built once per run by trainRun. */
export interface SessionOptions {
  /** The experiment file's folder: the model and dataset paths in the config are relative to it. */
  configDir: string;
  /** The backend in use, read once after it started (backendFacts()). */
  backend: BackendFacts;
  /** Where a session says what the user should know while it opens (the memory estimate). */
  log?: (message: string) => void;
}

/** Opens a session for any experiment kind. The tfjs backend must have been started (startBackend). */
export async function openSession(config: ExperimentConfig, options: SessionOptions): Promise<TrainingSession> {
  if (config.kind === 'causal-lm') return openCausalLmSession(config, options);
  return buildBuiltinSession(config);
}

/** openSession for kind 'causal-lm', typed for callers that use its extras (details, logits). */
export async function openCausalLmSession(config: ExperimentConfig, options: SessionOptions): Promise<CausalLmSession> {
  const { configDir, backend, log } = options;
  const m = causalLmSettings(config);
  const modelDir = path.resolve(configDir, m.modelPath);
  const configPath = path.join(modelDir, 'config.json');
  const configText = await fs.readFile(configPath, 'utf8').catch(() => undefined);
  if (configText !== undefined) {
    const hf = parseHfConfig(configText, configPath);
    const stored = await weightFileBytes(modelDir);
    const input = causalLmMemoryInput(config, hf, {
      nativeKernels: backend.nativeKernels,
      storedWeightBytes: stored || undefined,
      frozenOutsideHeap: backend.frozenOutsideHeap,
    });
    const estimate = estimateTrainingMemory(input);
    const refusal = memoryRefusal(input, estimate, backend.memoryLimits, modelDir);
    if (refusal) throw new InteropError('too-large', refusal, modelDir);
    log?.(describeMemoryEstimate(estimate));
  }
  // No config.json: loading names what is missing.
  return buildCausalLmSession(config, await loadCausalLmInputs(m.modelPath, m.dataset.path, configDir, backend.modelSizeLimit));
}
