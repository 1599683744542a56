// The disk side of a causal-lm run: reads the model folder and the dataset named by the experiment
// (paths relative to the config file's folder), then builds the pure session from src/models.
import type { ExperimentConfig } from '../formats/experimentTypes';
import { loadCausalLmInputs } from '../io/hfFolder';
import { causalLmSessionFrom, causalLmSettings, type CausalLmSession } from '../models/causalLmSession';
import { modelSizeLimit } from './backendSetup';

export async function createCausalLmSession(config: ExperimentConfig, configDir: string): Promise<CausalLmSession> {
  const m = causalLmSettings(config);
  return causalLmSessionFrom(config, await loadCausalLmInputs(m.modelPath, m.dataset.path, configDir, modelSizeLimit()));
}
