// The memory estimate is plain arithmetic on a model config and an experiment, so it lives in
// src/formats where the extension host (config hover, dashboard) can use it without tfjs; the engine
// and its callers keep importing it from here.
export * from '../formats/memoryEstimate';
